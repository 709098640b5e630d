// Package gpucheck is the GPU conformance check of `make gpu-check`: the same cases (forward
// logits, LoRA gradients, five optimizer steps, an evaluation) on the CUDA execution provider
// and on the CPU, compared within stated tolerances, with step times, users/s and device
// memory printed. Its tests build only with the gpucheck tag; BEAR_GPUCHECK_DEVICE=cpu runs
// them against the CPU itself, which tests the check without a GPU.
package gpucheck
