# The CUDA execution provider (issue: real shapes). make deps-cuda fetches ONNX Runtime 1.29
# for CUDA 13 from the npm registry (tools/deps-cuda.sh), where --device cuda finds it:
#   .cache/onnxruntime-cuda/libonnxruntime.so.1
#   .cache/onnxruntime-cuda/libonnxruntime_providers_cuda.so
#   .cache/onnxruntime-cuda/libonnxruntime_providers_shared.so
# (deploy/Dockerfile.cuda copies them into its image). make gpu-check compares the CUDA
# provider with the CPU on a machine with a GPU (tools/gpu-check.sh; without one it says so and
# exits 0). make test runs the check's own cases with the CPU standing in for the device
# (gpu-check-selftest), so that the comparisons themselves are tested here.

.PHONY: deps-cuda gpu-check gpu-check-selftest

deps-cuda:
	tools/deps-cuda.sh

gpu-check:
	tools/gpu-check.sh

gpu-check-selftest: deps
	BEAR_GPUCHECK_DEVICE=cpu ONNXRUNTIME_SHARED_LIBRARY_PATH= go test -tags gpucheck -count=1 ./tools/gpucheck/
