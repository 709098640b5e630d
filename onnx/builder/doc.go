// Package builder is a small typed builder of ONNX graphs over the protobuf types of onnxpb.
//
// A Graph hands out Values (a tensor name and its element type); each op method appends one node
// and returns its output Values with the element type the op produces, so that dtype mistakes
// surface while the graph is built rather than when ONNX Runtime loads it. Building is separate
// from execution: the result is a ModelProto, nothing here knows ONNX Runtime.
//
// Programmer errors (mixing dtypes, an unknown op arity) panic, as in gonum and GoMLX; exporters
// recover at their boundary and return an error.
package builder
