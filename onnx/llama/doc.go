// Package llama exports a Hugging Face Llama checkpoint (Llama-3.2 and the same architecture at
// other sizes) as ONNX graphs of standard operators that compute what transformers'
// LlamaForCausalLM computes (grouped-query attention, rotary embeddings with optional llama3
// scaling, RMSNorm, SwiGLU, tied or untied head).
//
// # Graphs
//
// ExportForward serializes the forward graph (BuildForward leaves it open, for autodiff to add
// a backward graph). Inputs: input_ids, attention_mask (1 token, 0 padding; left padding) and
// position_ids [batch, seq], logit_index [n] (flat positions b·seq + t). Output: logits at those
// positions, whose columns Options.Logits selects: the whole vocabulary (LogitsFullVocab), the
// ids of candidates [n, c] per position (LogitsCandidates), or the ids of vocab_subset [u] at
// every position (LogitsSubset, what training uses: the head's rows are gathered first, so the
// head costs u/vocab of the full one).
//
// ExportDecoder serializes the KV-cache decoder that beam search runs: one graph serves the
// prefill (an empty cache) and every later step. Inputs: input_ids, attention_mask over cached
// and new slots, position_ids of the new tokens, parents (the cache row each new row
// continues), PastKey and PastValue per layer, candidates [batch, c]. Outputs: the candidates'
// logits at the last new position, logz (the log-sum-exp of that position's full-vocabulary
// logits), and PresentKey and PresentValue per layer.
//
// # LoRA, dropout, weights
//
// With Options.LoRA the adapted projections take their LoRA matrices as graph inputs
// (LoRASpec.Inputs: lora.<layer>.<module>.A [r, in] and .B [out, r]) and compute
// x·Wᵀ + ((x·Aᵀ)·Bᵀ)·scaling as PEFT does, rank_pattern and alpha_pattern included. With Options.LoRADropout > 0 the forward graph takes
// dropout_seed (int64 [1]) and applies PEFT's dropout to each LoRA input with a mask hashed
// inside the graph from the seed; DropoutMask reproduces any mask bit for bit in Go, and equal
// seeds give the forward and backward graphs the same masks.
//
// Base weights are graph inputs under their HF names in their stored dtype, cast where they are
// used (Options.StoredWeightInputs: a runtime binds them from one mapping of the checkpoint),
// or in the compute dtype (Options.WeightsAsInputs: full training), or initializers stored as
// external data (BindStored in place in the checkpoint's safetensors files, cast at use;
// BindWeights in the compute dtype, converted once into a content-addressed cache entry when
// the checkpoint stores another).
package llama
