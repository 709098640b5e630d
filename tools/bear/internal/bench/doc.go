// Package bench measures bear's training step for `bear bench` and the Go benchmarks: forward
// and backward times, the FLOP count of a step from the model's shapes, ONNX Runtime's own GEMM
// rate on this machine (the ceiling a step can reach), and peak memory. It is measurement code,
// not library surface.
package bench
