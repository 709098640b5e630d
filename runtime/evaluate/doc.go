// Package evaluate is the job behind `bear eval`: it reads an Amazon split, builds the official
// inference prompts, decodes the users with trie-constrained beam search over an ortrun.Scorer,
// maps the beams back to item ids and writes the results; it also runs the pruning analysis
// and merges shards. Recommend decodes given histories (no split, no targets) with the same
// prompt, search and scorer: `bear recommend`.
//
// # Run
//
// Run evaluates one shard of a split with the official beam search (DefaultBeams beams and
// returned sequences, length penalty 1, no early stopping, DefaultMaxNewTokens; the constraint
// mode, before or after the softmax, from Options.Mode, see OfficialMode) and writes into
// Options.Out:
//
//   - predictions.json: one record per user in split order, the official inference script's
//     fields followed by ours (prefixed bear_);
//   - metrics.json: NDCG and HR at 1, 5 and 10, computed both on item identity (a beam's
//     trie path gives its item ids) and with the official string match (decoded, cleaned-up
//     titles), one of them the headline (Options.OfficialMatch); the users, the catalogue, the
//     configuration that identifies the evaluation, the timing, and with Options.Pruning the
//     pruning summary.
//
// The schema of both files is package results (runtime/evaluate/results), which readers of
// results use without ONNX Runtime. Files are written through a temporary file and a rename;
// Out is locked for the run.
//
// # Journal, resume and interrupts
//
// Finished batches are appended to Out/journal.jsonl and synced before they count as done. An
// interrupted run resumes after the last complete batch when run again with the same
// configuration (Options.Fresh discards the journal instead); a journal of another
// configuration, or a damaged line other than a cut last one, is an error naming the line.
// Cancelling Run's context stops the search at the next scorer call with an error wrapping
// ctx.Err(); the journal keeps every finished batch. The journal is removed once both files are
// written.
//
// # Shards and merging
//
// Options.Shard i/n takes the rows i, i+n, i+2n, ... of the split after Options.Limit; each
// shard folder is a complete result. Merge checks that the folders are exactly the shards
// 0..n-1 of one configuration, concatenates their predictions in split order and recomputes
// the metrics over the union (not an average of averages).
package evaluate
