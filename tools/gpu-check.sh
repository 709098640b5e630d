#!/usr/bin/env bash
# make gpu-check: bear's CUDA path against its CPU path on this machine's GPU (tools/gpucheck:
# forward logits, LoRA gradients, five optimizer steps, an evaluation; TF32 off), then step
# times and device memory at the small and Llama-3.2-1B shapes (bear bench step). Without an
# NVIDIA GPU it says so and exits 0. It needs the CUDA 13 libraries (cuBLAS, cuRAND, the
# runtime) and cuDNN 9 on the library path; a missing one is named.
#
# Where Go is missing (a GPU box that only runs what was built elsewhere), it runs the
# bin/gpucheck.test and bin/bear built beforehand, with .cache/ beside them:
#   make deps-cuda build && go test -c -tags gpucheck -o bin/gpucheck.test ./tools/gpucheck
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
	echo "make gpu-check: needs an NVIDIA GPU (nvidia-smi lists none on this machine): nothing was checked"
	exit 0
fi
nvidia-smi -L

if command -v go >/dev/null 2>&1; then
	make --no-print-directory deps deps-cuda build
	go test -c -tags gpucheck -o bin/gpucheck.test ./tools/gpucheck
fi
for f in bin/bear bin/gpucheck.test .cache/onnxruntime-cuda/libonnxruntime.so.1; do
	[ -e "$f" ] || { echo "make gpu-check: $f is missing (build it where Go is: make deps-cuda build; go test -c -tags gpucheck -o bin/gpucheck.test ./tools/gpucheck)" >&2; exit 1; }
done
unset ONNXRUNTIME_SHARED_LIBRARY_PATH # --device cuda uses .cache/onnxruntime-cuda

echo "== CUDA against CPU (tolerances in tools/gpucheck)"
(cd tools/gpucheck && ../../bin/gpucheck.test -test.count=1 -test.v) | grep -E '^(gpu-check:|--- |FAIL|PASS|ok)'

# peak runs the command while sampling the GPU's used memory, and prints the peak.
peak() {
	local log
	log=$(mktemp)
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$log" &
	local smi=$!
	"$@"
	kill "$smi" 2>/dev/null || true
	wait "$smi" 2>/dev/null || true
	echo "peak device memory: $(sort -n "$log" | tail -1) MiB (the whole GPU, nvidia-smi every 100 ms)"
	rm -f "$log"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for preset in small llama-3.2-1b; do
	echo "== bear bench step, $preset, 8 sequences of 256 tokens, --device cuda"
	bin/bear init --preset "$preset" --weights --out "$tmp/$preset" >/dev/null
	peak bin/bear bench step --model "$tmp/$preset" --device cuda --batch 8 --seq 256 --cache-dir "$tmp/cache"
done
