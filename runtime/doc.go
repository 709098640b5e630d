// Package runtime runs exported graphs on ONNX Runtime: it finds and loads the shared library,
// creates sessions on the CPU or CUDA execution provider, binds Go-owned buffers as tensors
// (ONNX Runtime reads and writes them in place), and owns what changes between runs: LoRA
// adapters (PEFT layout on disk) and batches of token ids.
//
// It never builds graphs: those come from onnx/llama.
package runtime
