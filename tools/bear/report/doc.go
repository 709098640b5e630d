// Package report is `bear report`: it reads finished `bear train` runs and their `bear eval`
// results, groups them into settings with seeds, and writes report.md with PNG plots. It reads
// files only (package results and package trainlog): no ONNX Runtime, no tokenizer.
//
// # Inputs
//
// Read takes run folders: the output folder of bear train, with train.jsonl (the curves,
// tokens/s, wall time and the run's settings), final/ (the run finished) and its evaluation's
// metrics.json in the subfolder Options.EvalSubdir. A folder with metrics.json but no
// train.jsonl is a plain evaluation: a setting of its own, labelled by the adapter or model it
// evaluated, with no seed and no training figures. Each training run's row says which of its
// models the evaluation used and why: best/ (the epoch its held-out validation rows chose),
// final/ (the last step), or an epoch folder chosen by hand. The test split never selects.
//
// # What it computes
//
//   - Settings: a setting is a loss plus the settings whose values differ between the runs of
//     that loss ("bear (xi 2.75, lambda 0.25)"); seeds, paths and machine settings do not
//     count.
//   - Per setting, over its seeds: the mean of NDCG and HR at 1, 5 and 10 with the half-width
//     of its 95% Student's t interval (none for one run); the incorrect-pruning rate
//     (incorrectly pruned targets over targets in the exact top-B), the same count over users,
//     and the lost-hit rate; training tokens/s (the median over a run's steps) and wall time.
//   - Per setting, a paired comparison with the baseline (Options.Baseline, default MSL) over
//     the seeds both ran: the mean difference of NDCG@10, HR@10 and the rates with its paired
//     t interval, and whether that interval contains 0; per run, the commands that made it.
//
// # Checks
//
// Every run must have been evaluated on the same users in the same way (dataset, split and its
// hash, catalogue, tokenizer, limit, users, beams, constraint, length penalty, stop rule,
// max_new_tokens, headline match, and with Options.Pruning the exact search's settings); only
// the model and adapter may differ, and paths and machine settings. The first difference
// is an error naming both metrics.json files. With Options.Pruning an evaluation without the
// pruning analysis is an error. Two folders of one setting and seed are refused.
//
// # Output
//
// Report.WriteFiles writes report.md, ndcg10.png (NDCG@10 per setting with its interval) and
// curves.png (loss and pruned share per step of each training setting), atomically. report.md
// depends only on the inputs (sorted, fixed number formats, no clock): rerunning the report
// gives the same bytes.
package report
