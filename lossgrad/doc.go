// Package lossgrad computes the LML, MSL and BEAR losses of one micro-batch and their
// gradients with respect to the logits, plus the beam-pruning diagnostics of the BEAR
// paper (arXiv 2601.22925). It is pure Go over slices and imports nothing of the project:
// the trainer runs the forward graph, hands the logits at the supervised positions to an
// Objective, and feeds the gradient it writes to the backward graph.
//
// # Layout
//
// LogitSlices holds the supervised positions of one micro-batch back to back: position i owns
// Logits[Offsets[i]:Offsets[i+1]] and its positive token is element Targets[i] of that
// slice. For MSL and BEAR the slice holds the logits of the tokens the item trie allows at
// that position (in any order; the trie's order is natural); for LML it holds the whole
// vocabulary. The gradient is written into a caller-provided slice of the same layout.
// Tokens that are not in a position's slice have gradient 0 (the official code sets their
// logits to -inf, so their softmax weight and their gradient are exactly 0). DenseLogitSlices
// wraps a dense [positions, vocab] matrix (LML); GatherAllowed and ScatterAllowed move
// between row-major logits (over the vocabulary, or a subset of it) and the allowed-token
// layout, given each position's columns.
//
// Use NewObjective[float32] once for the logits coming from ONNX Runtime (accumulation is
// float64 internally) and call Compute per micro-batch; it does not allocate once warm and
// shares the positions between GOMAXPROCS goroutines. NewObjective[float64] (or computeOnce)
// serves the finite-difference tests, the goldens and `bear loss`.
//
// # Formulas
//
// With z the logits of one position, tau the temperature, p = softmax(z/tau) over that
// position's slice, t the positive token, N the number of supervised positions:
//
//	LML:  L = (1/N) sum_i -log p_t(i)                       (slice = whole vocabulary)
//	MSL:  L = (1/N) sum_i -log p_t(i)                       (slice = allowed tokens)
//	BEAR: L = sum_i c_i * (-log p_t(i))
//	      beta_i = K-th largest p over the allowed tokens, or the smallest one when fewer
//	               than K tokens are allowed
//	      w_i    = 1 + lambda * sigmoid((log p_t(i) - log beta_i) / xi)       (a constant)
//	      c_i    = w_i / (sum_{j: n_j > 1} w_j + 1e-8)   where n_i > 1 tokens are allowed
//	      c_i    = w_i                                   where n_i = 1 (its term is 0)
//
// The gradient is the exact gradient of L with the coefficients held constant (w and beta
// are detached in the official code; 1/N is a constant):
//
//	dL/dz_j = c_i * (p_j - [j == t]) / tau
//
// Every log-sum-exp subtracts the maximum, so no finite logit overflows. The float64 path
// uses math.Exp throughout. The float32 path (training) keeps log p_t, log beta_t, the loss
// and the softmax sum in float64, and computes the exponentials with AVX2+FMA where the
// CPU has them (kernels_amd64.s: Cephes' expf, about 1e-7 relative, on (z - max)/tau
// rounded to float32, which adds 6e-8*|z - max|/tau; the float32 gradient it produces has
// 6e-8 anyway, and the loss moves by about 1e-8 relative), else with a portable
// table-driven float64 kernel accurate to about 1e-12. Build with -tags purego to force
// the portable loops. With AVX2, float32 slices of 16 384 logits or more (LML's
// vocabulary) are processed block by block:
// the top-K scan and the exponentials run on the same block while it is in L1, each block
// relative to the running maximum, and the final scaling pass folds in the correction
// exp((M_block - M)/tau), so the logits are read from memory once.
//
// # Diagnostics
//
// Each Position reports log p_t, log beta_t (defined as for BEAR, for every loss; for LML
// over the whole vocabulary), the pruning margin log beta_t - log p_t, and InTopK: p_t >=
// beta_t, the paper's necessary condition for the positive to survive a width-K beam at
// this step (ties with the K-th value count as inside, as in the paper's indicator
// I(p_t >= beta_t); a position with fewer than K allowed tokens is always inside). Result
// gives the number of violations and their share of the positions. Comparisons are done
// on the logits, so ties are exact.
//
// # Conventions mirrored from the official code
//
// The official trainers (train_lml.py, train_msl.py, train_bear.py, each in compute_loss)
// were transcribed in tools/reference/lossref.py, which writes the golden cases in
// testdata/lossgrad/. They fix these points:
//
//   - Positions whose label is -100 (the prompt, and padding; the collator pads the trie
//     mask with all-allowed rows on the left) are removed before anything else. They count
//     neither in MSL's or LML's mean nor in BEAR's weight normalisation; a LogitSlices must
//     therefore hold exactly the supervised positions (the response tokens and EOS).
//   - MSL's mean is over all supervised positions, including those with a single allowed
//     token, whose loss is 0 (so they dilute the mean).
//   - BEAR normalises only the weights of positions with more than one allowed token, by
//     their sum plus 1e-8 (so they sum to slightly less than 1). Single-token positions keep
//     their raw weight, but their term -log 1 and its gradient are 0. The loss is a sum.
//   - beta is the K-th largest probability counting ties (torch.topk); the official code
//     detects "fewer than K allowed" as a K-th probability equal to 0 and then takes the
//     smallest probability over the allowed tokens.
//   - The batch of the means and of BEAR's normalisation is one device's micro-batch. The
//     official run launches train_*.py with `accelerate launch` on 8 GPUs: 128 sequences per
//     step = 8 processes x 16 sequences, gradient_accumulation_steps = 1, and DDP averages
//     the 8 gradients. A single-device trainer reproduces it with micro-batches of 16
//     sequences, one Compute each, and the mean (not the sum) of their 8 gradients.
//   - Temperature divides the logits before the softmax for all three losses, so the
//     gradient carries 1/tau. K (the beam width) is 10 in the official trainer; xi and
//     lambda are its topk_tau and topk_weight (Toy: 2.75 and 0.25, see DefaultConfig).
//
// # Deviations from the official code
//
// These only show where the official float arithmetic leaves the real numbers; the goldens
// include such cases (marked "official_nonfinite") with the algebraically identical
// log-softmax values, and check that both forms agree to 1e-12 everywhere else.
//
//   - LML and MSL: the official code computes log(sum(exp(z/tau))) without subtracting
//     the maximum, so it returns inf/NaN once z/tau exceeds about 709 in float64 (88 in
//     float32), or once every allowed z/tau is below about -745; LML's -log(exp(z_t/tau))
//     also underflows. We subtract the maximum and stay finite.
//   - BEAR: the official code takes -log of a softmax probability, which is +inf when p_t
//     underflows to 0, and its "K-th probability == 0" test also fires when K or more
//     tokens are allowed but the K-th probability underflows; its replacement, the smallest
//     allowed probability, is then 0 too, so log beta = -inf and w = 1 + lambda. We work in
//     log space: beta is the smallest allowed probability exactly when fewer than K tokens
//     are allowed (docs/design.md's "smallest allowed": in exact arithmetic every allowed
//     probability is non-zero), and w comes from finite log-probabilities, so it differs
//     from the official value only where the official probabilities underflow.
//   - A position with one allowed token has loss and gradient exactly 0; the official MSL
//     computes -z/tau + log(exp(z/tau)), which can leave a rounding residue near 1e-16.
//   - An empty batch gives loss 0 (the official mean would be NaN); NaN or +Inf logits, or
//     a positive whose logit is -Inf, are reported as errNonFinite.
//   - The official LML softmax runs over the resized vocabulary, which includes the added
//     <pad> token (id 128256, 128 257 logits); lossgrad uses whatever slice it is given, so
//     reproducing that is the trainer's choice of slice.
package lossgrad
