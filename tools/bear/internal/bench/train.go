package bench

import (
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train"
)

// TrainBenchmark is the outcome of BenchmarkTrain: medians over the timed optimizer steps, each a
// complete step (data, forward, loss, backward, clipping, AdamW) as `bear train` runs it.
type TrainBenchmark struct {
	Engine     string `json:"engine"`
	Model      string `json:"model"`
	Data       string `json:"data"`
	Loss       string `json:"loss"`
	Policy     string `json:"policy"`
	Batch      int    `json:"batch"`
	NormGroup  int    `json:"norm_group"`
	MicroBatch int    `json:"micro_batch"`
	Threads    int    `json:"threads"`
	Ranks      int    `json:"ranks"` // data-parallel processes (mpirun -np); 1 without MPI
	// Steps are timed after WarmupSteps untimed ones (the first runs of each shape allocate).
	Steps       int `json:"steps"`
	WarmupSteps int `json:"warmup_steps"`
	// Tokens is the median number of real (unpadded) tokens per step.
	Tokens     float64 `json:"tokens"`
	TokensPerS float64 `json:"tokens_per_s"` // median over steps of tokens / wall time
	StepMS     float64 `json:"step_ms"`      // median wall time of a step
	ORTMS      float64 `json:"ort_ms"`       // median time inside ONNX Runtime's Run
	GoMS       float64 `json:"go_ms"`        // median of step wall − ORT time
	GoShare    float64 `json:"go_share"`     // median over steps of go / step
	// CPUMS is the median CPU time of the process per step (all threads): on a busy machine it
	// stays comparable where wall time does not.
	CPUMS float64 `json:"cpu_ms"`
	// CommMS is the median time per step inside the ranks' all-reduce of the gradients and
	// statistics (waiting for the slowest rank included), CommShare the median of comm / step.
	CommMS    float64 `json:"comm_ms"`
	CommShare float64 `json:"comm_share"`
	// GradientMB is what one rank contributes to each step's all-reduce (float32 gradients).
	GradientMB float64 `json:"gradient_mb"`
	// IOMB is the median over steps of the tensors bound to ONNX Runtime's runs (inputs and
	// outputs, MiB): read and written in place on the CPU, what crosses between host and device
	// memory on CUDA.
	IOMB     float64 `json:"ort_io_mb"`
	PrepareS float64 `json:"prepare_s"` // data, graphs and sessions, before the first step
	// RSSAfterPrepareMB is the peak RSS before the first step; PeakRSSMB the peak at the end.
	RSSAfterPrepareMB float64 `json:"rss_after_prepare_mb"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	// PeakPSSMB is the largest proportional set size sampled every 50 ms from the start of the
	// preparation to the last step: where the weights are ONNX Runtime's initializers (--weights
	// in-place or converted), RSS counts the file it maps into both the forward and the backward
	// session twice, PSS once (the memory the process holds); mapped weights count once in both.
	PeakPSSMB float64 `json:"peak_pss_mb"`
	// FirstStepLoss is the loss of the warm-up step: with PEFT's initialisation (B = 0) it is
	// the base model's, whatever the LoRA seed, so a replay of the dump must give it too.
	FirstStepLoss float64 `json:"first_step_loss"`
	Dump          string  `json:"dump,omitempty"`
}

// TrainRun says what BenchmarkTrain measures beyond the training options.
type TrainRun struct {
	Steps int // timed optimizer steps after one warm-up step (>= 1)
	// Dump, when set, is a file that receives the micro-batches of every step run (warm-up
	// included) for tools/reference/bench_train.py to replay (see writeTrainDump).
	Dump string
	// CPUProfile, when set, is a file that receives a Go CPU profile of the timed steps.
	CPUProfile string
}

// warmupSteps is the number of untimed steps before the timed ones.
const warmupSteps = 1

// stepSample is what one timed step measured.
type stepSample struct {
	tokens, positions int
	loss              float64
	wall, ort, cpu    time.Duration
	comm              time.Duration
	io                int64 // bytes bound to ONNX Runtime's runs
}

// BenchmarkTrain prepares a training run as `bear train` does (o.Out empty: a temporary folder,
// removed afterwards), runs one warm-up step and r.Steps timed optimizer steps, and reports their
// medians. o.MaxSteps is set to the steps run, so the schedule covers them.
func BenchmarkTrain(o train.Options, r TrainRun) (*TrainBenchmark, error) {
	if r.Steps < 1 {
		return nil, fmt.Errorf("--steps %d: want at least 1 timed step", r.Steps)
	}
	if o.Out == "" {
		tmp, err := os.MkdirTemp("", "bear-bench-train-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		o.Out = tmp
	}
	o.MaxSteps = warmupSteps + r.Steps
	pss := procstat.SamplePSS(50 * time.Millisecond)
	defer pss.Stop()
	t0 := time.Now()
	st, err := train.Prepare(o)
	if err != nil {
		return nil, err
	}
	res := newTrainBenchmark(o, r)
	res.GradientMB = float64(4*st.TrainableValues()) / (1 << 20)
	res.PrepareS, res.RSSAfterPrepareMB = time.Since(t0).Seconds(), procstat.PeakRSSMiB()
	samples, err := timeSteps(st, r)
	st.Close()
	if err != nil {
		return nil, err
	}
	res.PeakRSSMB, res.PeakPSSMB = procstat.PeakRSSMiB(), pss.Stop()
	res.summarise(samples)
	if r.Dump != "" {
		if err := writeTrainDump(r.Dump, o, st.Set(), samples); err != nil {
			return nil, err
		}
		res.Dump = r.Dump
	}
	return res, nil
}

func newTrainBenchmark(o train.Options, r TrainRun) *TrainBenchmark {
	threads := o.Runtime.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	b := &TrainBenchmark{
		Engine: "bear", Model: o.Model, Data: o.Data, Loss: o.Loss.Kind.String(), Policy: o.Policy.String(),
		Batch: o.Batch.Batch, NormGroup: o.Batch.NormGroup, MicroBatch: min(o.Batch.Micro, o.Batch.NormGroup),
		Threads: threads, Steps: r.Steps, WarmupSteps: warmupSteps, Ranks: 1,
	}
	if o.Comm != nil {
		b.Ranks = o.Comm.Size()
	}
	return b
}

// timeSteps runs the warm-up and the timed steps, every one of them recorded (the dump replays
// the warm-up too); a Go CPU profile covers the timed ones when asked for.
func timeSteps(st *train.Prepared, r TrainRun) ([]stepSample, error) {
	var samples []stepSample
	for global := range warmupSteps + r.Steps {
		if global == warmupSteps && r.CPUProfile != "" {
			stop, err := startCPUProfile(r.CPUProfile)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
		c0, io0 := procstat.CPUTime(), ortrun.IOBytes()
		s, err := st.Step(global)
		if err != nil {
			return nil, fmt.Errorf("benchmark step %d: %w", global, err)
		}
		samples = append(samples, stepSample{tokens: s.Tokens, positions: s.Positions, loss: s.Loss, wall: s.Wall, ort: s.ORT, cpu: procstat.CPUTime() - c0, comm: s.Comm, io: ortrun.IOBytes() - io0})
	}
	return samples, nil
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// summarise fills the medians of the timed samples (the warm-up ones are skipped).
func (b *TrainBenchmark) summarise(all []stepSample) {
	b.FirstStepLoss = all[0].loss
	timed := all[warmupSteps:]
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	b.Tokens = median(timed, func(s stepSample) float64 { return float64(s.tokens) })
	b.TokensPerS = median(timed, func(s stepSample) float64 { return float64(s.tokens) / s.wall.Seconds() })
	b.StepMS = median(timed, func(s stepSample) float64 { return ms(s.wall) })
	b.ORTMS = median(timed, func(s stepSample) float64 { return ms(s.ort) })
	b.GoMS = median(timed, func(s stepSample) float64 { return ms(s.wall - s.ort) })
	b.GoShare = median(timed, func(s stepSample) float64 { return float64(s.wall-s.ort) / float64(s.wall) })
	b.CPUMS = median(timed, func(s stepSample) float64 { return ms(s.cpu) })
	b.CommMS = median(timed, func(s stepSample) float64 { return ms(s.comm) })
	b.CommShare = median(timed, func(s stepSample) float64 { return float64(s.comm) / float64(s.wall) })
	b.IOMB = median(timed, func(s stepSample) float64 { return float64(s.io) / (1 << 20) })
}

// median is the median of f over xs (the mean of the middle two for an even count).
func median[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
