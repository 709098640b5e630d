// Package trainlog writes, reads and plots train.jsonl, the training log of `bear train`: one
// JSON object per line, in its run folder. `bear plot` draws it and `bear report` reads it. It
// imports nothing of the project but the atomic writer (and gonum.org/v1/plot for Plot).
//
// # Schema
//
// Each line is one record; its "kind" says which. Read ignores unknown fields, so later
// versions may add some; an unknown kind is an error. A value that is not finite (a diverged
// step) is written as null and read back as NaN.
//
//	kind  when                         fields
//	step  after each optimizer step    step (1-based, strictly increasing), epoch (fractional),
//	                                   loss (mean of the norm groups'), lr, grad_norm (before
//	                                   clipping), tokens, tokens_per_s, step_ms, pruned_share
//	                                   (targets outside the top-K allowed tokens), mean_weight
//	                                   (raw BEAR weight; 1 for LML and MSL), elapsed_s
//	eval  after an epoch's evaluation  step, epoch (1-based), split ("valid": held-out rows;
//	                                   "test"; older logs: none, read as test), users, metrics
//	                                   (lower-case names: "ndcg@10", "hr@1", ...), elapsed_s
//	run   when a run starts or resumes step (0: a fresh run), split, rows, dropped_item_ids,
//	                                   settings (Settings names to string values; older logs
//	                                   hold flags instead, which ReadRuns reads as settings),
//	                                   valid_split and valid_rows, run_file and its sha256
//
// elapsed_s counts from the start of the process that wrote the record (a resume restarts it).
// The types Step, Eval and Run are the records, field for field.
//
// # Writing, resuming, reading
//
// Each Writer call appends one line with a single write and syncs the file before returning,
// so a kill leaves at most one torn final line. Open(path, keepThroughStep) prepares the log
// for a run: a fresh run passes 0, which empties it; a run resumed from the checkpoint after
// step n passes n, which drops every record above step n and a torn line, keeping the other
// lines byte for byte (the file is replaced by rename, so no crash loses them). Read and
// ReadRuns skip a torn final line; any other bad line is an error naming the file and line.
// Plot draws the steps and evaluations as one PNG (loss, pruned share, NDCG@10 by epoch).
// SelectionFile is the record, in a run's best/ folder, of the validated epoch it holds.
package trainlog
