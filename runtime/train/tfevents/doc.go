// Package tfevents writes the training curves of a run as a TensorBoard event file, so that
// `tensorboard --logdir` shows them, and reads such files back. It writes scalars only: one
// Event per call of Writer.Scalars, each value as TensorBoard's own scalar summary writes it
// (tensorboard/plugins/scalar/summary_v2.py): a rank-0 DT_FLOAT tensor with metadata of the
// "scalars" plugin and of class DATA_CLASS_SCALAR, which both of TensorBoard's loaders show,
// the default Rust one (tensorboard-data-server, which drops scalar tensors of any other dtype)
// and the Python one (--load_fast=false).
//
// Values are therefore stored as float32, as TensorBoard stores and loads every scalar:
// Writer.Scalars rounds each float64 to the nearest float32, keeping NaN, ±Inf and -0, turning
// a value below float32's range into ±0, and refusing a finite value too large for float32
// rather than turning it into ±Inf; Read returns the float32 widened to float64. The file is
// for looking at curves: a caller that needs the float64 values exactly keeps its own log of
// them (bear keeps train.jsonl).
//
// Read also accepts the scalars of other writers: TensorFlow 1's simple_value, a float32 or
// float64 in a tensor's tensor_content (TensorFlow's summary ops), and rank-0 DT_DOUBLE
// tensors, whose values come back exactly.
//
// A file is a sequence of TFRecords (length, masked CRC32C of the length, an Event proto, masked
// CRC32C of the proto) that starts with an Event holding file_version "brain.Event:2". Open
// resumes a file the way a resumed training run needs: it drops the steps after the checkpoint
// and a record torn by a kill, and refuses a file that is damaged elsewhere or not an event file.
package tfevents
