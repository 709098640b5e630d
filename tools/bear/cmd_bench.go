package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/bearrec/bear/onnx/hf"
	"io"
	"os"
	goruntime "runtime"
	"sort"
	"time"

	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train"
	"github.com/bearrec/bear/runtime/train/comm"
	"github.com/bearrec/bear/tools/bear/internal/bench"
)

func init() {
	register(&command{name: "bench", summary: "measure speed and memory: bench forward | bench step | bench train", run: func(args []string) error {
		return benchMain(args, os.Stdout)
	}, options: joinOptions(trainOptions, ortOptions)})
}

func benchMain(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "forward":
			return benchForward(args[1:], stdout)
		case "step":
			return benchStep(args[1:], stdout)
		case "train":
			return benchTrain(args[1:], stdout)
		}
	}
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
		return fmt.Errorf("unknown benchmark %q: want forward, step or train (bear bench forward|step|train --model DIR [flags])", args[0])
	}
	return fmt.Errorf("usage: bear bench forward|step|train --model DIR [flags]")
}

// checkCounts refuses any of the named counts below 1, naming the flags in order.
func checkCounts(counts map[string]int) error {
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := checkPositive(name, counts[name]); err != nil {
			return err
		}
	}
	return nil
}

// benchForward reports forward tokens/s, the time to create the session, and the process's peak
// resident memory, with the Go heap beside it (base weights must live only inside ONNX Runtime).
func benchForward(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench forward", "--model DIR [flags]")
	model := fs.String("model", "", "checkpoint folder (required)")
	batch := fs.Int("batch", 8, "sequences per batch")
	seq := fs.Int("seq", 256, "tokens per sequence")
	iters := fs.Int("iters", 5, "timed runs after one warm-up run")
	of := addORTFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	if err := checkCounts(map[string]int{"batch": *batch, "seq": *seq, "iters": *iters}); err != nil {
		return err
	}
	if err := of.check(); err != nil {
		return err
	}
	opts, err := of.modelOptions()
	if err != nil {
		return err
	}
	t0 := time.Now()
	ck, err := hf.Open(*model)
	if err != nil {
		return err
	}
	m, err := ortrun.Load(ck, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	load := time.Since(t0)
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	seqs := make([][]int64, *batch)
	for i := range seqs {
		seqs[i] = make([]int64, *seq)
		for t := range seqs[i] {
			seqs[i][t] = int64((i*7919 + t*104729) % m.Config.VocabSize)
		}
	}
	b := ortrun.NewTokenBatch(seqs)
	index := make([]int64, *batch)
	for i := range index {
		index[i] = b.Index(i, *seq-1)
	}
	if _, err := m.Logits(b, index, nil, 0); err != nil {
		return err
	}
	t1 := time.Now()
	for range *iters {
		if _, err := m.Logits(b, index, nil, 0); err != nil {
			return err
		}
	}
	per := time.Since(t1) / time.Duration(*iters)
	out := map[string]any{
		"model": *model, "batch": *batch, "seq": *seq, "threads": *of.threads, "device": *of.device,
		"load_seconds":       load.Seconds(),
		"forward_seconds":    per.Seconds(),
		"tokens_per_second":  float64(*batch**seq) / per.Seconds(),
		"peak_rss_mib":       procstat.PeakRSSMiB(),
		"go_heap_after_load": float64(ms.HeapInuse) / (1 << 20),
	}
	js, _ := json.MarshalIndent(out, "", "  ")
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

// benchStep reports a LoRA training step's forward and backward times, its FLOP rate against
// ONNX Runtime's GEMM rate in the same run, and the peak RSS of this process.
func benchStep(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench step", "--model DIR [flags]")
	model := fs.String("model", "", "checkpoint folder (required)")
	batch := fs.Int("batch", 8, "sequences per batch")
	seq := fs.Int("seq", 256, "tokens per sequence")
	positions := fs.Int("positions", 20, "label positions per sequence (full-vocabulary logits there)")
	iters := fs.Int("iters", 3, "timed steps after one warm-up step")
	of := addORTFlags(fs)
	tf := addTrainFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	if err := checkCounts(map[string]int{"batch": *batch, "seq": *seq, "positions": *positions, "iters": *iters}); err != nil {
		return err
	}
	if *positions > *seq {
		return fmt.Errorf("--positions %d: want at most --seq %d (label positions are the last tokens of each sequence)", *positions, *seq)
	}
	if err := of.check(); err != nil {
		return err
	}
	mo, err := of.modelOptions()
	if err != nil {
		return err
	}
	o, err := tf.options(mo)
	if err != nil {
		return err
	}
	if o.Full {
		return fmt.Errorf("bench step measures LoRA steps; --train full is not benchmarked")
	}
	r, err := bench.BenchmarkStep(*model, o, *batch, *seq, *positions, *iters)
	if err != nil {
		return err
	}
	js, _ := json.MarshalIndent(r, "", "  ")
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

const benchTrainUsage = `--model DIR --data DIR --loss lml|msl|bear [--micro-batch N] [--steps N] [--threads N] [flags]

Times complete optimizer steps of ` + "`bear train`" + ` (data, forward, loss, backward, clipping, AdamW)
on the first steps of the run that the same flags describe, after one warm-up step, and prints
one JSON line of medians: tokens_per_s, step_ms, ort_ms (inside ONNX Runtime), go_ms (the rest),
cpu_ms, peak_rss_mb. --dump FILE writes the micro-batches run, for
tools/reference/bench_train.py to replay in PyTorch. The flags of ` + "`bear train`" + ` that only a
run has (--out, --resume, --epochs, --max-steps, --eval-users, --checkpoint-every) are refused.

flags:`

// benchTrainRefused are the flags of `bear train` that describe a whole run, not a step.
var benchTrainRefused = []string{"out", "resume", "epochs", "max-steps", "eval-users", "checkpoint-every", "no-progress", "valid-file", "early-stop"}

// benchTrain times optimizer steps of a training run (see benchTrainUsage). With --threads N the
// Go side (loss workers, GOMAXPROCS) gets N threads too, so that "one thread" means one core for
// the whole step, as torch.set_num_threads does for PyTorch.
func benchTrain(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench train", benchTrainUsage)
	f := defineRunFlags(fs)
	steps := fs.Int("steps", 5, "timed optimizer steps after one warm-up step")
	dump := fs.String("dump", "", "write the micro-batches of every step run (JSON lines) to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed steps to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	world, err := comm.Init()
	if err != nil {
		return err
	}
	return finishRanks("bench train", world, benchTrainRanks(fs, f, world, *steps, *dump, *cpuProfile, stdout))
}

// benchTrainRanks is one rank's part of benchTrain: under mpirun every rank runs the steps, and
// rank 0 prints the result (its comm_ms is the time spent in the all-reduce).
func benchTrainRanks(fs *flag.FlagSet, f *runFlags, world comm.Comm, steps int, dump, cpuProfile string, stdout io.Writer) error {
	o, err := benchTrainOptions(fs, f, steps, world)
	if err != nil {
		return err
	}
	if world.Rank() != 0 {
		stdout, dump, cpuProfile = io.Discard, "", ""
	}
	if t := o.Runtime.Threads; t > 0 { // restored afterwards for the tests' sake
		o.Loss.Workers = t
		defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(t))
	}
	r, err := bench.BenchmarkTrain(o, bench.TrainRun{Steps: steps, Dump: dump, CPUProfile: cpuProfile})
	if err != nil {
		return err
	}
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

// benchTrainOptions validates every flag before any work: the run's options as `bear train`
// checks them (with a placeholder --out, the benchmark's temporary folder), the step count, and
// the refusal of run-only flags.
func benchTrainOptions(fs *flag.FlagSet, f *runFlags, steps int, world comm.Comm) (train.Options, error) {
	for _, name := range benchTrainRefused {
		if isFlagSet(fs, name) {
			return train.Options{}, fmt.Errorf("--%s describes a whole run: bench train times single optimizer steps", name)
		}
	}
	if *f.model == "" || *f.data == "" || *f.loss == "" {
		return train.Options{}, fmt.Errorf("--model, --data and --loss are required")
	}
	if steps < 1 {
		return train.Options{}, fmt.Errorf("--steps %d: want at least 1 timed step", steps)
	}
	o, err := f.options()
	if err != nil {
		return o, err
	}
	o.Comm = world
	o.Out = "-" // checked by Validate; BenchmarkTrain uses a temporary folder
	if err := o.Validate(); err != nil {
		return o, err
	}
	o.Out = ""
	if o.Runtime, err = f.ort.modelOptions(); err != nil {
		return o, err
	}
	return o, nil
}
