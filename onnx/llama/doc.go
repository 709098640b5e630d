// Package llama exports the forward pass of a Hugging Face Llama checkpoint (Llama-3.2 and the
// same architecture at other sizes) as an ONNX graph of standard operators.
//
// The graph follows transformers' LlamaForCausalLM: token embedding, then per layer RMSNorm,
// grouped-query causal attention with rotary embeddings (half-split layout, optional llama3
// frequency scaling) and a left-padding mask, a residual add, RMSNorm, a SwiGLU MLP and a second
// residual add; a final RMSNorm and the LM head (tied or untied).
//
// Conventions of the exported graph:
//   - Hidden states are kept 2-D, [batch·seq, hidden], so every projection is one Gemm with
//     transB=1 on the HF weight as stored ([out, in]): no transposed copies of weights, and ONNX
//     Runtime pre-packs them because they are initializers.
//   - Attention is computed as [batch, kv_heads, group, seq, head_dim]: the query heads that share
//     a key/value head form the group axis, so keys and values are broadcast, never repeated.
//   - Masked scores are replaced (Where) by the dtype's lowest finite value, as transformers does,
//     so a fully masked row (a padding query) gives a uniform softmax instead of NaN.
//   - Logits are computed only at the flat positions in logit_index (b·seq + t); with
//     LogitsCandidates they are further reduced to the token ids in candidates, per position.
//   - LoRA matrices of the targeted modules are graph inputs "lora.<layer>.<module>.A" [r, in]
//     and ".B" [out, r]; a projection computes x·Wᵀ + ((x·Aᵀ)·Bᵀ)·(alpha/r), as PEFT does.
//   - Base weights are initializers stored as external data: in place in the checkpoint's
//     safetensors files when their dtype is the compute dtype, otherwise converted once into a
//     weights file beside the graph (see BindWeights).
package llama
