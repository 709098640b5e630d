// Package peft reads and writes LoRA adapters in the layout of Hugging Face's PEFT library
// (adapter_config.json + adapter_model.safetensors, keys
// base_model.model.model.layers.{i}.self_attn.{q,v}_proj.lora_{A,B}.weight, A [r, in] and
// B [out, r] in float32, scaling alpha/r or alpha/sqrt(r) with use_rslora), and merges an
// adapter into a checkpoint's weights (W' = W + scaling·B·A). rank_pattern and alpha_pattern give
// modules their own r and alpha as PEFT does: their keys are Python regular expressions tried in
// the file's order against the module's full name, the first match winning (llama.LoRASpec
// keeps them in that order; a key Go's regexp cannot match as Python's re does is refused).
// Reading is strict both ways: every LoRA matrix the configuration implies must be present, at
// its module's rank, and a tensor that none of them is (a module outside target_modules, a layer
// the model lacks) is an error naming it, because dropping it would merge or evaluate a different
// model than the one trained.
//
// It is a file format next to the checkpoint reader (onnx/hf): it touches no ONNX Runtime. The
// ortrun copies an Adapter's matrices into the graph's LoRA inputs (ortrun.Model.SetAdapter,
// ortrun.Trainer.SetAdapter); the trainer writes its trained matrices back with WriteAdapter.
package peft
