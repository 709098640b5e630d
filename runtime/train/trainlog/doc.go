// Package trainlog writes, reads and plots the training log of `bear train`: the file
// train.jsonl in the run's output folder, one JSON object per line. `bear plot` draws it and
// `bear report` reads it. The package is pure Go (plus gonum.org/v1/plot for the picture) and
// imports nothing of the project.
//
// # Schema
//
// Every line is one record whose "kind" says which. Lines are written in order; a resumed run
// continues the same file (see Resuming). Unknown fields are ignored by Read, so later versions
// may add fields; an unknown kind is an error.
//
// "kind":"step", one per optimizer step:
//
//	step          int    optimizer steps done, 1-based; strictly increasing through the file
//	epoch         float  epochs done, fractional (step / steps per epoch)
//	loss          float  loss of the step: the mean of its norm groups' losses
//	lr            float  learning rate the step used
//	grad_norm     float  global L2 norm of the LoRA gradient before clipping
//	tokens        int    real (non-padding) tokens in the step
//	tokens_per_s  float  tokens / step wall time
//	step_ms       float  wall time of the step, milliseconds
//	pruned_share  float  share of the step's response positions whose target token is outside
//	                     the top-K allowed tokens (the positions beam search would prune)
//	mean_weight   float  mean raw BEAR weight w over those positions (1 for LML and MSL)
//	elapsed_s     float  seconds since the run (or its latest resume) started
//
// "kind":"eval", after an epoch when the run evaluates (--eval-users):
//
//	step          int    optimizer steps done when it ran
//	epoch         int    epochs done, 1-based
//	users         int    users evaluated
//	metrics       object metric name to value, lower case: "ndcg@1", "ndcg@5", "ndcg@10",
//	                     "hr@1", ... (Eval.Metric also finds keys in other cases)
//	elapsed_s     float  seconds since the run (or its latest resume) started, at its end
//
// "kind":"run", when a run starts or resumes (bear train writes it before its first step):
//
//	step              int    optimizer steps done when the process started (0: a fresh run)
//	split             string the training split file
//	rows              int    rows trained on
//	dropped_item_ids  int    item ids of those rows missing from the catalogue, dropped from
//	                         them as the official data code drops them
//	settings          object setting name (Settings: "loss", "seed", "model", "model_sha256",
//	                         ...) to its value as a string; logs of older runs have "flags"
//	                         keyed by bear train's flags instead (read as settings), or neither
//
// A float that is not finite (NaN or ±Inf, as on the step where a run diverges) is written as
// null (JSON has no NaN or Infinity) and read back as NaN. Example:
//
//	{"kind":"step","step":1,"epoch":0.004,"loss":2.81,"lr":1e-05,"grad_norm":3.2,"tokens":4096,"tokens_per_s":1820.4,"step_ms":2250,"pruned_share":0.41,"mean_weight":1.06,"elapsed_s":2.3}
//	{"kind":"eval","step":250,"epoch":1,"users":500,"metrics":{"hr@10":0.09,"ndcg@10":0.051},"elapsed_s":700.1}
//
// # Writing and resuming
//
// Writer.WriteStep and Writer.WriteEval append one line each with a single write and sync the
// file before returning, so a kill (SIGKILL, power loss) leaves at most one torn final line.
// Open(path, keepThroughStep) prepares the file for a run: a fresh run passes 0, which empties
// an old log (run records included); a run resumed from the checkpoint after step n passes n,
// which drops every record with a step above n (written after that checkpoint, so they will be
// written again)
// and the torn line. The kept lines stay byte for byte as they were; the new file replaces the
// old one by rename after a sync, so no crash loses them.
//
// # Reading and plotting
//
// Read returns the records, skipping a torn final line (unterminated, not valid JSON); any
// other bad line is an error naming the file and line. Plot draws the steps and evaluations as
// one PNG of stacked panels over the epoch axis (loss with its running mean; pruned share;
// NDCG@10 when evaluations have it), written atomically.
package trainlog
