// Package report is `bear report`: it reads finished `bear train` runs and their `bear eval`
// results, groups them into settings with seeds, and writes report.md with PNG plots: the
// ranking metrics and the incorrect-pruning rate as means over seeds with Student's t
// confidence intervals, training speed and curves, a paired comparison of every setting with
// a baseline (default MSL), and for every run the commands and flags that made it.
//
// # Inputs
//
// A run folder is the --out of bear train: train.jsonl (package trainlog: its step records
// give the curves, tokens/s and wall time; its "run" records carry the run's flags), final/
// (its presence says the run finished), and the run's evaluation in the subfolder eval/
// (Options.EvalSubdir): metrics.json as bear eval --out RUN/eval writes it, read through
// results.Metrics so that the schema has one definition. Logs written before run records
// carried flags fall back to the identity in checkpoint.safetensors' metadata (every flag
// that decides the numbers, without the paths). A folder without train.jsonl but with
// metrics.json is a plain evaluation: it forms its own setting, labelled by the adapter (or
// model) it evaluated, with no seed and no training figures.
//
// # Checks
//
// Every run must have been evaluated on the same users in the same way: dataset, split file
// and its sha256, catalogue and tokenizer sha256, limit, users, beams, returned sequences,
// constraint, length penalty, stop rule, max_new_tokens and the headline match (and with
// Options.Pruning the exact length penalty and frontier cap); the first difference is an
// error naming both metrics.json files. With Options.Pruning (bear report --pruning, the
// default) an evaluation without --pruning is an error. Two folders of one setting and seed
// are refused (one seed would count twice).
//
// # Settings, intervals, pairs
//
// A setting is a loss plus the flags whose values differ between the runs of that loss
// ("bear (xi 2.75, lambda 0.25)"; seeds, paths and machine settings do not count). Its value
// of a metric is the mean over its runs, with the half-width t(0.975, n-1) * s / sqrt(n) of
// the 95% interval (s the sample standard deviation; gonum's stat and distuv); one run has no
// interval, and the report says so. The incorrect-pruning rate of a run is
// incorrectly_pruned / target_in_exact_top_b of its pruning summary (targets among the exact
// top-B items by full-sequence score that beam search pruned); pruned / users is shown too, and
// the lost-hit rate lost_hits / (target_returned_by_beam + lost_hits): of the targets whose
// own final score beats the last returned hypothesis, the share beam search did not return.
// Tokens/s is the median over a run's steps; wall time sums, over the processes of a run
// (a resume restarts elapsed_s), the elapsed_s of their last step. The paired comparison takes,
// for each seed run by both a setting and the baseline, the difference setting - baseline of
// NDCG@10, HR@10 and the pruning rate, and gives the mean with its paired t interval, saying
// whether the interval contains 0.
//
// # Output
//
// report.md, ndcg10.png (a bar per setting with its interval) and curves.png (per training
// setting, loss and pruned share per step: a thin line per seed, the mean in bold). report.md
// depends only on the inputs (sorted, fixed number formats, no clock), so rerunning the
// report gives the same file. Files are written through internal/atomicfs.
package report
