// Package autodiff turns a forward ONNX graph into a backward graph of standard ONNX operators
// by reverse-mode differentiation, since ONNX Runtime no longer ships gradient operators.
//
// Conventions:
//
//   - A cotangent of a value v is a tensor of v's shape and dtype holding ∂L/∂v for the scalar
//     loss L of the caller. The caller supplies the cotangent of one forward output (the
//     selected logits) as the backward graph's input "grad.<output>", and receives
//     "grad.<name>" for each requested trainable input or initializer.
//   - Only values that depend on a trainable input and on which the output depends get a
//     cotangent: frozen weights, masks, positions, and every layer below the lowest trainable
//     parameter are pruned, so they cost nothing in the backward graph.
//   - Broadcasting is summed back: the cotangent of an operand that numpy-broadcast along some
//     axes is reduced over those axes (ReduceSum, keepdims) and its leading broadcast axes are
//     squeezed. Which axes broadcast is read from the builder's static shapes, where symbolic
//     axes (batch, seq, …) count as larger than 1: the exporters broadcast only along axes that
//     are 1 by construction.
//   - A value used several times accumulates its cotangents with Add, in node order.
//   - Every rule is written once over the builder's ops and is dtype-generic (float32/float64).
//   - Residuals are the forward values the backward graph reads. Under Stash the forward graph
//     outputs them (and backward takes them as inputs: on CPU they stay in Go buffers); under
//     Recompute the backward graph re-runs the part of the forward graph that produces them.
//     Where a rule needs only a value's runtime shape, the residual is Shape(value), a tiny
//     int64 tensor, not the value. Values the forward graph marks rematerializable
//     (builder.Graph.MarkRematerializable: a dropout mask applied to an input that is kept
//     anyway, the LM head's rows of a vocabulary subset, a weight cast from its stored
//     precision) are recomputed by the backward graph from their producers' inputs, under
//     names of their own, instead of being stashed or shared with the forward recomputation.
//   - Integer and bool values (index arithmetic, masks hashed from a seed) never carry a
//     cotangent: they are constants of the differentiation, recomputed or stashed like any
//     residual.
//   - Gather's gradient sums the rows of repeated indices (sorted with TopK, summed in float64)
//     before it scatters them: ONNX Runtime's CPU ScatterND spreads its updates over threads
//     and loses some when two of them add into the same row.
package autodiff
