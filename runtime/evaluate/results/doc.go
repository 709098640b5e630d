// Package results is the schema of an evaluation folder: metrics.json (Metrics: the metrics, the
// configuration that identifies the evaluation, the pruning summary, the timing) and
// predictions.json (Record: one per user, the official inference script's fields first, then
// ours prefixed bear_), with their reading and writing. Non-ASCII text is written as UTF-8
// where Python's json.dump escapes it: the same JSON values. It imports nothing of the project
// but the atomic writer, so that readers of results (bear report) need neither ONNX Runtime nor
// the tokenizer.
package results
