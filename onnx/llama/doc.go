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
//     LogitsCandidates they are further reduced to the token ids in candidates, per position
//     (after the full-vocabulary Gemm: the decoder needs that Gemm for its log-sum-exp anyway);
//     with LogitsSubset the LM head's rows of the ids in vocab_subset [u] are gathered first
//     (tied embedding or lm_head alike) and the logits [n, u] are one Gemm of that size. For
//     training the subset is the union of the tokens the loss can see in a batch (the trie's
//     allowed tokens and the targets: a few thousand of 128 256), so the head costs u/vocab of
//     the full Gemm and the logits, the cotangent and the head's gradient shrink alike. Under
//     full training the head (or embedding) gradient is the [u, hidden] one scattered back.
//   - LoRA matrices of the targeted modules are graph inputs "lora.<layer>.<module>.A" [r, in]
//     and ".B" [out, r]; a projection computes x·Wᵀ + ((x·Aᵀ)·Bᵀ)·(alpha/r), as PEFT does, with
//     the module's own r and alpha where rank_pattern or alpha_pattern give it some
//     (LoRASpec.ModuleRank, ModuleScaling).
//   - With Options.LoRADropout = p > 0 the graph takes dropout_seed (int64 [1]) and each LoRA
//     branch is B(A(dropout(x)))·scaling as in PEFT, dropout(x) = x·keep/(1-p) (see below).
//   - Base weights are initializers stored as external data: in place in the checkpoint's
//     safetensors files when their dtype is the compute dtype, otherwise converted once into a
//     weights file beside the graph (see BindWeights). That cache is content-addressed: an
//     entry's name is the SHA-256 of what the conversion reads, so checkpoints sharing a cache
//     folder, running at the same time or replaced in place with the same size and time never
//     get each other's weights; entries are written by rename (atomicfs) and checked on reuse.
//
// # LoRA dropout inside the graph
//
// PEFT applies dropout to the input of each LoRA branch only: B(A(dropout(x)))·scaling, a fresh
// Bernoulli(1-p) mask per module and step over x [batch·seq, in]. The mask could come from Go
// as an input, but then it has to exist in memory for the whole step, for every module: at the
// Llama-3.2-1B shape with LoRA on q_proj and v_proj (16 layers, 32 modules, in = 2048) that is
// tokens × 2048 × 32 bytes as bools, 64 KiB per token: 256 MiB for a micro-batch of 16 × 256
// tokens (1 GiB as float32 scale factors), written by Go and copied across to the device each
// step. Instead the graph hashes it from the step's seed: keep[r, c] is a counter-based integer
// hash of (dropout_seed, module index, r, c) built from int64 Mul, Div, Mod, Add and Less
// (dropout.go describes it; every intermediate stays below 2^63), so
//   - the mask needs no memory outside ONNX Runtime and nothing crosses the host boundary but
//     one int64;
//   - the forward and backward graphs of a step see the same mask as long as they get the same
//     seed, and distinct modules (q and v of one layer, other layers) get independent masks;
//   - DropoutMask reproduces any mask bit for bit in Go, for references (the PyTorch check of
//     the trainer is fed these masks).
//
// Module indices (DropoutMask's module) follow LoRASpec.ModuleIndex: layer by layer, and in HF
// order within a layer among the targets; with q_proj and v_proj, layer l's q_proj is 2l and
// its v_proj 2l+1. Rows are flat token positions b·seq + t, padding included.
//
// The mask is an integer subgraph, so autodiff never differentiates it. Under the Recompute
// policy the backward graph recomputes it from dropout_seed (an input of both graphs). Under
// Stash the backward graph keeps the bool mask (1 byte per element, the figure above) rather
// than rerunning the hash, which costs about 8 int64 operations per element, and recomputes
// x·keep/(1-p) from the normed hidden state that Stash keeps anyway: the dropped inputs are
// marked rematerializable, so no float copy of x per module is kept. Regenerating the mask
// there instead would cost what the forward pass pays for it a second time, as under Recompute.
//
// Cost, measured by BenchmarkLoRADropout (runtime/dropout_test.go: `small` preset, 8 × 256
// tokens, r 8 on q_proj and v_proj, float32, one thread, process CPU time on a busy 2-core
// machine, steps with and without dropout interleaved): p = 0.05 adds 3–5% to a step under
// Stash (the forward's hash, about 10 ns per mask element) and 7–11% under Recompute (the
// backward hashes again). At the 1B shape each mask element comes with about 6.5× more
// matrix work than on `small` (91 against 14 kFLOP per step), so the same per-element cost is
// roughly 0.5–1% of a step (Stash) and 1–2% (Recompute).
package llama
