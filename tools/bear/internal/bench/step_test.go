package bench

import (
	"flag"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
)

// BenchmarkTrainStep: one LoRA (q_proj, v_proj, r 8) training step on the `small` preset,
// batch 8 × 256, full-vocabulary logits at the last 20 tokens of each sequence, one thread.
// Only the steps are timed (ns/op is one step); the checkpoint, the export, autodiff and the
// sessions are set up before the timer starts. Reports median forward and backward
// milliseconds and the share of ONNX Runtime's GEMM rate; `bear bench step` adds peak RSS.
//
//	go test ./tools/bear/internal/bench -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	if err := ortrun.Init(""); err != nil {
		b.Fatal(err)
	}
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		b.Run(policy.String(), func(b *testing.B) {
			p, _ := hf.LookupPreset("small")
			dir := filepath.Join(b.TempDir(), "small")
			if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1}); err != nil {
				b.Fatal(err)
			}
			o := ortrun.TrainOptions{Policy: policy, Model: ortrun.ModelOptions{CacheDir: b.TempDir(), SessionOptions: ortrun.SessionOptions{Threads: 1},
				LoRA: &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16}}}
			r, err := newStepRunner(dir, o, 8, 256, 20)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			samples := benchSteps(b, r)
			gemm, err := gemmRate(gemmSize, 1)
			if err != nil {
				b.Fatal(err)
			}
			res := summariseSteps(samples, r.FLOPs(), gemm)
			b.ReportMetric(res.ForwardSeconds*1e3, "fwd-ms")
			b.ReportMetric(res.BackwardSeconds*1e3, "bwd-ms")
			b.ReportMetric(res.ShareOfGemmRate, "of-gemm-rate")
		})
	}
}

// stepper is what benchSteps times: a stepRunner, or a stand-in in tests.
type stepper interface{ Step() (stepTimes, error) }

// benchSteps runs one untimed warm-up step, then b.N timed steps, and returns their times.
// Whatever the caller did before (setup) is left out of the benchmark's time.
func benchSteps(b *testing.B, s stepper) []stepTimes {
	if _, err := s.Step(); err != nil {
		b.Fatal(err)
	}
	samples := make([]stepTimes, 0, b.N)
	b.ResetTimer()
	for range b.N {
		st, err := s.Step()
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, st)
	}
	b.StopTimer()
	return samples
}

// sleepStepper takes d per step.
type sleepStepper struct{ d time.Duration }

func (s sleepStepper) Step() (stepTimes, error) {
	time.Sleep(s.d)
	return stepTimes{Forward: s.d / 2, Backward: s.d / 2}, nil
}

// TestTimeStepsLeavesSetupOut: with a slow setup (300 ms) and 5 ms steps, run 3 times as
// `-benchtime 3x` does, the benchmark reports about one step per op, not the setup spread over
// three steps (about 105 ms).
func TestTimeStepsLeavesSetupOut(t *testing.T) {
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	defer bt.Value.Set(old)
	if err := bt.Value.Set("3x"); err != nil {
		t.Fatal(err)
	}
	step := 5 * time.Millisecond
	res := testing.Benchmark(func(b *testing.B) {
		time.Sleep(300 * time.Millisecond) // the export, autodiff and sessions of BenchmarkTrainStep
		if got := len(benchSteps(b, sleepStepper{step})); got != b.N {
			t.Errorf("%d samples for b.N %d", got, b.N)
		}
	})
	if res.N != 3 {
		t.Fatalf("b.N %d, want 3", res.N)
	}
	if per := time.Duration(res.NsPerOp()); per < step || per > 6*step {
		t.Errorf("%v per op for %v steps after a 300 ms setup: the setup is timed", per, step)
	}
}

// TestSummariseSteps: every figure is a median, and the share of the GEMM rate divides the
// rate at the median step by the median GEMM rate (like with like), so one slow step (a busy
// machine) moves neither. A mean step over a best-of-5 GEMM gave 0.5 · 4/3 = 0.33 here.
func TestSummariseSteps(t *testing.T) {
	ms := time.Millisecond
	samples := []stepTimes{
		{Forward: 100 * ms, Backward: 300 * ms, ForwardCPU: 110 * ms, BackwardCPU: 310 * ms},
		{Forward: 1000 * ms, Backward: 3000 * ms, ForwardCPU: 1010 * ms, BackwardCPU: 3010 * ms}, // a slow outlier
		{Forward: 120 * ms, Backward: 280 * ms, ForwardCPU: 130 * ms, BackwardCPU: 290 * ms},
	}
	// 2048³·2 FLOP at a median of 1 s is 17.18 GFLOP/s; the best run would say twice that.
	gemm := gemmGFLOPS(2048, []time.Duration{time.Second, 500 * ms, 1100 * ms, 900 * ms, 1200 * ms})
	wantGemm := 2 * math.Pow(2048, 3) / 1e9
	flops := 4e9 // 4 GFLOP per step; median step 0.4 s: 10 GFLOP/s
	r := summariseSteps(samples, flops, gemm)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"gemm GFLOP/s (median run)", r.GemmGFLOPS, wantGemm},
		{"forward_seconds", r.ForwardSeconds, 0.12},
		{"backward_seconds", r.BackwardSeconds, 0.3},
		{"forward_cpu_seconds", r.ForwardCPUSeconds, 0.13},
		{"backward_cpu_seconds", r.BackwardCPUSeconds, 0.31},
		{"step GFLOP/s at the median step", r.StepGFLOPS, 10},
		{"share of the GEMM rate", r.ShareOfGemmRate, 10 / wantGemm},
		{"iterations", float64(r.Iterations), 3},
	} {
		if math.Abs(c.got-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
