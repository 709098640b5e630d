package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"time"

	"github.com/bearrec/bear/internal/bench"
	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/runtime"
)

func init() {
	register(&command{name: "bench", summary: "measure speed and memory: bench forward | bench step", run: func(args []string) error {
		return benchMain(args, os.Stdout)
	}})
}

func benchMain(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "forward":
			return benchForward(args[1:], stdout)
		case "step":
			return benchStep(args[1:], stdout)
		}
	}
	return fmt.Errorf("usage: bear bench forward|step --model DIR [flags]")
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	opts, err := of.modelOptions()
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := runtime.Load(*model, opts)
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
	b := runtime.NewTokenBatch(seqs)
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
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
