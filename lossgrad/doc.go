// Package lossgrad computes the LML, MSL and BEAR losses of one micro-batch and their
// gradients with respect to the logits, as the official trainers' compute_loss defines them,
// plus the beam-pruning diagnostics of the BEAR paper (arXiv 2601.22925). It is pure Go over
// slices and imports nothing of the project.
//
// A LogitSlices holds the supervised positions only (those labelled -100 are left out):
// position i owns Logits[Offsets[i]:Offsets[i+1]], the logits of its allowed tokens for MSL and
// BEAR (GatherAllowed builds it from row-major logits) or of the whole vocabulary for LML
// (DenseLogitSlices), and its positive token is element Targets[i] of that slice. Make an
// Objective once (NewObjective) and call Compute per micro-batch: it validates the layout,
// returns the Result, writes dL/dlogits into grad (b's layout; ScatterAllowed writes it back
// into rows, 0 outside the slices) and, if asked, one Position of diagnostics per position.
// Compute does not allocate once warm; an Objective is not safe for concurrent use.
//
// With p = softmax(z/Tau) over a position's slice, t its positive and N the positions:
//
//	LML, MSL: L = (1/N) sum_i -log p_t(i)
//	BEAR:     L = sum_i c_i * -log p_t(i),   c_i = w_i / (sum_{j: n_j > 1} w_j + WeightEps)
//	          w_i = 1 + Lambda * sigmoid((log p_t(i) - log beta_i) / Xi)
//	          beta_i = the K-th largest p (ties counted), or the smallest if n_i < K
//	dL/dz_j = c_i * (p_j - [j == t]) / Tau,  c_i = 1/N for LML and MSL,
//
// where n_i is the number of logits of position i. w and beta are constants of the gradient
// (detached, as in the official code). A position with one allowed token has loss and
// gradient 0 but still counts in N. The batch of the means and of BEAR's normalisation is the
// official run's per-device micro-batch (DDP averages the devices' gradients), so a
// single-device trainer computes each such micro-batch apart and averages the gradients.
// Config.Unnormalised sets c_i = 1 (LML, MSL) or w_i (BEAR): loss and gradient are then sums
// that add up over the micro-batches of a normalisation group, for the caller to divide once
// by the group's N (sum of Result.Positions) or weight sum (of Result.WeightSum, + WeightEps).
//
// Position reports log p_t, log beta_t (for every loss), the pruning margin log beta_t -
// log p_t and InTopK (p_t >= beta_t, ties inside: necessary for the positive to survive a
// width-K beam at this step); Result counts the violations. Accumulation is float64 whatever
// the element type. Every log-sum-exp subtracts the maximum, so finite logits give finite
// results where the official arithmetic overflows or underflows, and otherwise the same up to
// rounding. An empty batch gives loss 0; NaN or +Inf logits, or a positive whose logit is
// -Inf, make Compute return an error.
package lossgrad
