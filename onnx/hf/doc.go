// Package hf reads and writes Llama checkpoints in the Hugging Face layout: config.json, and
// weights in model.safetensors or shards listed by model.safetensors.index.json.
//
// Opening a checkpoint reads only headers: every tensor the configuration implies is located
// (file, byte offset, dtype, shape) and checked against the configuration, so that a graph can
// reference the bytes in place as ONNX external data, or convert them once to the compute dtype.
// Every error names the file, and where it applies the tensor or the config field, at fault.
// A folder holding both model.safetensors and an index is read from model.safetensors, as
// transformers reads it. The safetensors header parser trusts nothing in the file: the header
// length and every tensor's byte range are checked against the file's size (with overflow-safe
// shape arithmetic) before anything is allocated; FuzzSafetensorsHeader and FuzzParseConfig
// exercise it and ParseConfig.
//
// The package also writes checkpoints (random initialisation for presets and test fixtures,
// float32 copies), in exactly the layout transformers writes, so that the PyTorch reference and
// any other framework can load them.
package hf
