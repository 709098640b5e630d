// Package runtime runs exported graphs on ONNX Runtime: it finds and loads the shared library,
// creates sessions on the CPU or CUDA execution provider, binds Go-owned buffers as tensors
// (ONNX Runtime reads and writes them in place), and fronts the graphs bear runs: Model (a
// forward pass), Trainer (a training step's forward and backward passes), the beam-search
// scorers (a KV-cache decoder, or whole sequences rerun), and the manifest of an artifact folder.
//
// It builds no graph itself: it asks onnx/llama for the exported graphs and onnx/autodiff for
// their backward graphs (BuildTrainGraphs), and runs them. PEFT adapter files live in onnx/peft;
// measurement code in tools/bear/internal/bench. docs/design.md has the map of the whole project.
package ortrun
