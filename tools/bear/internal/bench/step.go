package bench

import (
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"time"

	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
	"google.golang.org/protobuf/proto"
)

// StepBenchmark is the outcome of BenchmarkStep. Times are medians over the timed steps, and
// the GEMM rate is the median of its runs too, so that the share compares like with like.
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
	// StepGFLOPS is the step's FLOPs over the median step time (forward + backward).
	StepGFLOPS      float64 `json:"step_gflop_per_second"`
	GemmGFLOPS      float64 `json:"ort_gemm_gflop_per_second"`
	ShareOfGemmRate float64 `json:"share_of_gemm_rate"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	GoHeapMiB       float64 `json:"go_heap_mib"`
	Iterations      int     `json:"iterations"`
}

// stepTimes are the wall and process CPU times of one training step's two passes.
type stepTimes struct {
	Forward, Backward       time.Duration
	ForwardCPU, BackwardCPU time.Duration
}

// stepRunner runs LoRA training steps on one fixed batch, so that the setup (export, autodiff,
// sessions, the batch) happens once and apart from the steps being timed.
type stepRunner struct {
	tr         *ortrun.Trainer[float32]
	in         ortrun.GraphInputs
	cot        []float32
	rng        *rand.Rand
	flops      float64
	batch, seq int
}

// newStepRunner builds the trainer for dir and a batch of batch × seq random tokens with
// full-vocabulary logits at the last `positions` tokens of every sequence.
func newStepRunner(dir string, o ortrun.TrainOptions, batch, seq, positions int) (*stepRunner, error) {
	ck, err := hf.Open(dir)
	if err != nil {
		return nil, err
	}
	tr, err := ortrun.NewTrainer[float32](ck, o)
	if err != nil {
		return nil, err
	}
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
	b := ortrun.NewTokenBatch(seqs)
	var index []int64
	for i := range seqs {
		for t := seq - positions; t < seq; t++ {
			index = append(index, b.Index(i, t))
		}
	}
	r := &stepRunner{tr: tr, in: ortrun.GraphInputs{Batch: b, Index: index}, rng: rng, batch: batch, seq: seq}
	r.flops = stepFLOPs(tr.Config, o.Model.LoRA.Rank, len(o.Model.LoRA.Targets), batch, seq, len(index))
	return r, nil
}

// Step runs one forward and one backward pass and returns their times.
func (r *stepRunner) Step() (stepTimes, error) {
	t0, c0 := time.Now(), procstat.CPUTime()
	logits, err := r.tr.Forward(r.in)
	if err != nil {
		return stepTimes{}, err
	}
	t1, c1 := time.Now(), procstat.CPUTime()
	if r.cot == nil {
		r.cot = make([]float32, len(logits))
		for i := range r.cot {
			r.cot[i] = float32(r.rng.NormFloat64() * 1e-3)
		}
	}
	if _, err := r.tr.Backward(r.cot); err != nil {
		return stepTimes{}, err
	}
	t2, c2 := time.Now(), procstat.CPUTime()
	return stepTimes{Forward: t1.Sub(t0), Backward: t2.Sub(t1), ForwardCPU: c1 - c0, BackwardCPU: c2 - c1}, nil
}

// FLOPs is the step's FLOP count (stepFLOPs of its shapes).
func (r *stepRunner) FLOPs() float64 { return r.flops }

// Close releases the trainer.
func (r *stepRunner) Close() { r.tr.Close() }

// BenchmarkStep times iters LoRA training steps after one warm-up step (see newStepRunner), and
// measures ONNX Runtime's float32 GEMM rate on one large MatMul in the same run.
func BenchmarkStep(dir string, o ortrun.TrainOptions, batch, seq, positions, iters int) (*StepBenchmark, error) {
	if iters < 1 {
		return nil, fmt.Errorf("iterations %d: want at least 1 timed step", iters)
	}
	r, err := newStepRunner(dir, o, batch, seq, positions)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	samples := make([]stepTimes, 0, iters)
	for it := -1; it < iters; it++ { // one warm-up step
		st, err := r.Step()
		if err != nil {
			return nil, err
		}
		if it >= 0 {
			samples = append(samples, st)
		}
	}
	threads := o.Model.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	gemm, err := gemmRate(gemmSize, threads)
	if err != nil {
		return nil, err
	}
	res := summariseSteps(samples, r.FLOPs(), gemm)
	res.Model, res.Policy, res.Batch, res.Seq, res.Positions, res.Threads = dir, o.Policy.String(), batch, seq, positions, threads
	res.PeakRSSMiB = procstat.PeakRSSMiB()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	res.GoHeapMiB = float64(ms.HeapInuse) / (1 << 20)
	return res, nil
}

// summariseSteps turns the timed steps into medians, and the step's FLOP rate at its median
// time into a share of the GEMM rate, itself a median (gemmRate).
func summariseSteps(samples []stepTimes, flops, gemmGFLOPS float64) *StepBenchmark {
	sec := func(f func(stepTimes) time.Duration) float64 {
		return median(samples, func(s stepTimes) float64 { return f(s).Seconds() })
	}
	r := &StepBenchmark{Iterations: len(samples), StepGFLOP: flops / 1e9, GemmGFLOPS: gemmGFLOPS,
		ForwardSeconds:     sec(func(s stepTimes) time.Duration { return s.Forward }),
		BackwardSeconds:    sec(func(s stepTimes) time.Duration { return s.Backward }),
		ForwardCPUSeconds:  sec(func(s stepTimes) time.Duration { return s.ForwardCPU }),
		BackwardCPUSeconds: sec(func(s stepTimes) time.Duration { return s.BackwardCPU }),
	}
	r.BackwardPerFwd = r.BackwardSeconds / r.ForwardSeconds
	step := sec(func(s stepTimes) time.Duration { return s.Forward + s.Backward })
	r.StepGFLOPS = r.StepGFLOP / step
	r.ShareOfGemmRate = r.StepGFLOPS / gemmGFLOPS
	return r
}

// stepFLOPs counts the multiply-adds (×2) of a LoRA step from the shapes: the forward pass
// (projections, attention over the full seq×seq square as computed, LoRA branches, the LM head
// at n positions) and the backward pass (activation gradients through every layer, which cost
// what the forward projections cost, twice the attention, the LoRA weight gradients, and the
// LM head's input gradient). Frozen weights get no gradient, so none is counted.
func stepFLOPs(c hf.Config, rank, loraModules, batch, seq, n int) float64 {
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

// gemmSize is the side of the square MatMul gemmRate times.
const gemmSize = 2048

// gemmRuns is how many timed runs gemmRate takes the median of.
const gemmRuns = 5

// gemmRate measures ONNX Runtime's float32 MatMul rate (GFLOP/s) on an n×n by n×n product
// with the weight as an initializer (pre-packed, as the model's weights are): the median of
// gemmRuns runs after a warm-up, as the step figures it is compared with are medians.
func gemmRate(n, threads int) (float64, error) {
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
	s, err := ortrun.NewSession(model, ".", []string{"x"}, []string{"y"}, ortrun.SessionOptions{Threads: threads})
	if err != nil {
		return 0, fmt.Errorf("gemm benchmark: %w", err)
	}
	defer s.Close()
	in := map[string]ortrun.Tensor{"x": ortrun.NewTensorLike([]float32(nil), []int64{int64(n), int64(n)})}
	out := map[string]ortrun.Tensor{"y": ortrun.NewTensorLike([]float32(nil), []int64{int64(n), int64(n)})}
	xs := in["x"].Data.([]float32)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	if err := s.RunNamed(in, out); err != nil {
		return 0, err
	}
	runs := make([]time.Duration, gemmRuns)
	for i := range runs {
		t0 := time.Now()
		if err := s.RunNamed(in, out); err != nil {
			return 0, err
		}
		runs[i] = time.Since(t0)
	}
	return gemmGFLOPS(n, runs), nil
}

// gemmGFLOPS is the rate of an n×n by n×n product at the median of the timed runs.
func gemmGFLOPS(n int, runs []time.Duration) float64 {
	sec := median(runs, func(d time.Duration) float64 { return d.Seconds() })
	return 2 * float64(n) * float64(n) * float64(n) / sec / 1e9
}
