// Package bench measures bear's training step for `bear bench` and the Go benchmarks: forward and
// backward times, the FLOP count of a step from the model's shapes, ONNX Runtime's own GEMM rate
// on this machine (the ceiling a step can reach), and peak memory. It is measurement code, not
// library surface: runtime/ stays what runs graphs.
package bench

import (
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"time"

	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime"
	"google.golang.org/protobuf/proto"
)

// StepBenchmark is the outcome of BenchmarkStep.
type StepBenchmark struct {
	Model           string  `json:"model"`
	Policy          string  `json:"policy"`
	Batch           int     `json:"batch"`
	Seq             int     `json:"seq"`
	Positions       int     `json:"label_positions"`
	Threads         int     `json:"threads"`
	ForwardSeconds  float64 `json:"forward_seconds"`
	BackwardSeconds float64 `json:"backward_seconds"`
	// CPU seconds of the whole process (all threads): on a busy machine the one-thread figures
	// stay comparable where wall time does not.
	ForwardCPUSeconds  float64 `json:"forward_cpu_seconds"`
	BackwardCPUSeconds float64 `json:"backward_cpu_seconds"`
	BackwardPerFwd     float64 `json:"backward_over_forward"`
	StepGFLOP          float64 `json:"step_gflop"`
	StepGFLOPS         float64 `json:"step_gflop_per_second"`
	GemmGFLOPS         float64 `json:"ort_gemm_gflop_per_second"`
	ShareOfGemmRate    float64 `json:"share_of_gemm_rate"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	GoHeapMiB          float64 `json:"go_heap_mib"`
	Iterations         int     `json:"iterations"`
}

// BenchmarkStep times the forward and backward passes of a LoRA training step on a batch of
// batch × seq tokens with full-vocabulary logits at the last `positions` tokens of every
// sequence, and measures ONNX Runtime's float32 GEMM rate on one large MatMul in the same run.
func BenchmarkStep(dir string, o runtime.TrainOptions, batch, seq, positions, iters int) (*StepBenchmark, error) {
	tr, err := runtime.NewTrainer[float32](dir, o)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, p := range tr.Params {
		for i := range p {
			p[i] = float32(0.01 * rng.NormFloat64())
		}
	}
	seqs := make([][]int64, batch)
	for i := range seqs {
		seqs[i] = make([]int64, seq)
		for t := range seqs[i] {
			seqs[i][t] = int64(rng.IntN(tr.Config.VocabSize))
		}
	}
	b := runtime.NewTokenBatch(seqs)
	var index []int64
	for i := range seqs {
		for t := seq - positions; t < seq; t++ {
			index = append(index, b.Index(i, t))
		}
	}
	var cot []float32
	var fwd, bwd, fwdCPU, bwdCPU time.Duration
	for it := -1; it < iters; it++ { // one warm-up run
		t0, c0 := time.Now(), procstat.CPUTime()
		logits, err := tr.Forward(runtime.GraphInputs{Batch: b, Index: index})
		if err != nil {
			return nil, err
		}
		t1, c1 := time.Now(), procstat.CPUTime()
		if cot == nil {
			cot = make([]float32, len(logits))
			for i := range cot {
				cot[i] = float32(rng.NormFloat64() * 1e-3)
			}
		}
		if _, err := tr.Backward(cot); err != nil {
			return nil, err
		}
		t2, c2 := time.Now(), procstat.CPUTime()
		if it >= 0 {
			fwd += t1.Sub(t0)
			bwd += t2.Sub(t1)
			fwdCPU += c1 - c0
			bwdCPU += c2 - c1
		}
	}
	threads := o.Model.Session.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	gemm, err := GemmRate(2048, threads)
	if err != nil {
		return nil, err
	}
	flops := StepFLOPs(tr.Config, o.Model.LoRA.Rank, len(o.Model.LoRA.Targets), batch, seq, len(index))
	r := &StepBenchmark{Model: dir, Policy: o.Policy.String(), Batch: batch, Seq: seq, Positions: positions, Threads: threads,
		ForwardSeconds: fwd.Seconds() / float64(iters), BackwardSeconds: bwd.Seconds() / float64(iters), Iterations: iters,
		ForwardCPUSeconds: fwdCPU.Seconds() / float64(iters), BackwardCPUSeconds: bwdCPU.Seconds() / float64(iters)}
	r.BackwardPerFwd = r.BackwardSeconds / r.ForwardSeconds
	r.StepGFLOP = flops / 1e9
	r.StepGFLOPS = r.StepGFLOP / (r.ForwardSeconds + r.BackwardSeconds)
	r.GemmGFLOPS = gemm
	r.ShareOfGemmRate = r.StepGFLOPS / gemm
	r.PeakRSSMiB = procstat.PeakRSSMiB()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	r.GoHeapMiB = float64(ms.HeapInuse) / (1 << 20)
	return r, nil
}

// StepFLOPs counts the multiply-adds (×2) of a LoRA step from the shapes: the forward pass
// (projections, attention over the full seq×seq square as computed, LoRA branches, the LM head
// at n positions) and the backward pass (activation gradients through every layer, which cost
// what the forward projections cost, twice the attention, the LoRA weight gradients, and the
// LM head's input gradient). Frozen weights get no gradient, so none is counted.
func StepFLOPs(c hf.Config, rank, loraModules, batch, seq, n int) float64 {
	tok := float64(batch * seq)
	h, q, kv, in := float64(c.HiddenSize), float64(c.QDim()), float64(c.KVDim()), float64(c.IntermediateSize)
	proj := 2 * tok * (h*q + 2*h*kv + q*h + 3*h*in)
	attn := 2 * 2 * float64(batch) * float64(c.NumHeads) * float64(seq) * float64(seq) * float64(c.HeadDim)
	lora := 2 * tok * float64(rank) * (h + q) * float64(loraModules) // ≈ A and B of each module
	head := 2 * float64(n) * h * float64(c.VocabSize)
	layers := float64(c.NumLayers)
	forward := layers*(proj+attn+lora) + head
	backward := layers*(proj+2*attn+2*lora) + head
	return forward + backward
}

// GemmRate measures ONNX Runtime's float32 MatMul rate (GFLOP/s) on an n×n by n×n product
// with the weight as an initializer (pre-packed, as the model's weights are).
func GemmRate(n, threads int) (float64, error) {
	g := builder.New("gemm")
	x := g.Input("x", builder.Float32, n, n)
	vals := make([]float64, n*n)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range vals {
		vals[i] = rng.NormFloat64()
	}
	w := g.ConstFloat(builder.Float32, vals, int64(n), int64(n))
	g.Output(g.MatMul(x, w), "y")
	model, err := proto.Marshal(g.Model("bear"))
	if err != nil {
		return 0, err
	}
	s, err := runtime.NewSession(model, ".", []string{"x"}, []string{"y"}, runtime.SessionOptions{Threads: threads})
	if err != nil {
		return 0, fmt.Errorf("gemm benchmark: %w", err)
	}
	defer s.Close()
	in := map[string]runtime.Tensor{"x": runtime.NewTensorLike([]float32(nil), []int64{int64(n), int64(n)})}
	out := map[string]runtime.Tensor{"y": runtime.NewTensorLike([]float32(nil), []int64{int64(n), int64(n)})}
	xs := in["x"].Data.([]float32)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	if err := s.RunNamed(in, out); err != nil {
		return 0, err
	}
	best := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		if err := s.RunNamed(in, out); err != nil {
			return 0, err
		}
		best = min(best, time.Since(t0))
	}
	return 2 * float64(n) * float64(n) * float64(n) / best.Seconds() / 1e9, nil
}
