package bench

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train"
	"github.com/bearrec/bear/runtime/train/trainset"
	"github.com/bearrec/bear/tokenize"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		name string
		xs   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{3}, 3},
		{"odd unsorted", []float64{5, 1, 4}, 4},
		{"even: mean of the middle two", []float64{4, 1, 3, 10}, 3.5},
		{"outlier does not move it", []float64{1, 2, 1000}, 2},
	} {
		if got := median(c.xs, func(x float64) float64 { return x }); got != c.want {
			t.Errorf("%s: median %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSummarise: the warm-up step is left out, go time is wall − ORT, and every figure is the
// median over the timed steps.
func TestSummarise(t *testing.T) {
	ms := time.Millisecond
	samples := []stepSample{
		{tokens: 1, wall: 100000 * ms, ort: 0, cpu: 100000 * ms}, // warm-up: would dominate every figure
		{tokens: 1000, wall: 1000 * ms, ort: 900 * ms, cpu: 1100 * ms},
		{tokens: 3000, wall: 2000 * ms, ort: 1900 * ms, cpu: 2100 * ms},
		{tokens: 2000, wall: 4000 * ms, ort: 3000 * ms, cpu: 3900 * ms},
	}
	var b TrainBenchmark
	b.summarise(samples)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"tokens", b.Tokens, 2000},
		{"tokens_per_s", b.TokensPerS, 1000}, // per step: 1000, 1500, 500
		{"step_ms", b.StepMS, 2000},
		{"ort_ms", b.ORTMS, 1900},
		{"go_ms", b.GoMS, 100},       // 100, 100, 1000
		{"go_share", b.GoShare, 0.1}, // 0.1, 0.05, 0.25
		{"cpu_ms", b.CPUMS, 2100},
	} {
		if math.Abs(c.got-c.want) > 1e-9*math.Max(1, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestBenchmarkTrainRejectsSteps: a step count below 1 is refused before any work (the model
// folder does not exist, so any work would fail differently).
func TestBenchmarkTrainRejectsSteps(t *testing.T) {
	for _, steps := range []int{0, -1} {
		o := train.DefaultOptions()
		o.Model, o.Data = filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir(), "missing")
		_, err := BenchmarkTrain(o, TrainRun{Steps: steps})
		if err == nil || !strings.Contains(err.Error(), "--steps") {
			t.Errorf("steps %d: error %v, want one naming --steps", steps, err)
		}
	}
}

// tinyTrainOptions is a short run on the `tiny` preset and the committed Office data: 32 rows,
// steps of 4 sequences in two norm groups of 2, micro-batches of 1.
func tinyTrainOptions(t *testing.T, kind lossgrad.Kind) train.Options {
	t.Helper()
	if err := ortrun.Init(""); err != nil {
		t.Fatalf("ONNX Runtime (run `make deps`): %v", err)
	}
	p, _ := hf.LookupPreset("tiny")
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 3}); err != nil {
		t.Fatal(err)
	}
	o := train.DefaultOptions()
	o.Model, o.Data, o.Tokenizer = dir, filepath.Join("..", "..", "..", "..", "testdata", "office"), testdeps.Tokenizer(t)
	o.Samples, o.Loss = 32, lossgrad.DefaultConfig(kind)
	o.Batch = trainset.Options{Batch: 4, NormGroup: 2, Micro: 1, Seed: 42, Bucket: 16}
	o.LoRA = &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}
	o.Runtime = ortrun.ModelOptions{SessionOptions: ortrun.SessionOptions{Threads: 1}, CacheDir: t.TempDir()}
	return o
}

// TestBenchmarkTrainDump runs the benchmark on the tiny model and checks its figures and that
// the dump holds the steps it ran in the layout bench_train.py replays.
func TestBenchmarkTrainDump(t *testing.T) {
	for _, kind := range []lossgrad.Kind{lossgrad.LML, lossgrad.BEAR} {
		t.Run(kind.String(), func(t *testing.T) {
			o := tinyTrainOptions(t, kind)
			dump := filepath.Join(t.TempDir(), "dump.jsonl")
			r, err := BenchmarkTrain(o, TrainRun{Steps: 2, Dump: dump})
			if err != nil {
				t.Fatal(err)
			}
			if r.Steps != 2 || r.WarmupSteps != 1 || r.Loss != kind.String() || r.Threads != 1 || r.MicroBatch != 1 {
				t.Errorf("run description %+v", r)
			}
			if !(r.StepMS > 0 && r.ORTMS > 0 && r.GoMS >= 0 && r.ORTMS <= r.StepMS && r.TokensPerS > 0 && r.PeakRSSMB >= r.RSSAfterPrepareMB) {
				t.Errorf("implausible figures %+v", r)
			}
			header, steps := readDump(t, dump)
			if header.Loss.Kind != kind.String() || header.Steps != 2 || header.WarmupSteps != 1 || header.Optim.Total != 3 || header.LoRA.Rank != 4 {
				t.Errorf("header %+v", header)
			}
			if len(steps) != 3 {
				t.Fatalf("%d steps in the dump, want 3 (warm-up and 2 timed)", len(steps))
			}
			for _, s := range steps {
				checkDumpStep(t, s, o.Batch)
			}
		})
	}
}

func readDump(t *testing.T, path string) (trainDumpHeader, []trainDumpStep) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	var header trainDumpHeader
	var steps []trainDumpStep
	for sc.Scan() {
		if header.Kind == "" {
			if err := json.Unmarshal(sc.Bytes(), &header); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var s trainDumpStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return header, steps
}

// checkDumpStep: the counts add up, every logit slot predicts its target (the next slot of the
// same row), and every target is among its allowed tokens.
func checkDumpStep(t *testing.T, s trainDumpStep, b trainset.Options) {
	t.Helper()
	if len(s.Groups) != b.Batch/b.NormGroup {
		t.Errorf("step %d: %d groups, want %d", s.Step, len(s.Groups), b.Batch/b.NormGroup)
	}
	tokens, positions, rows := 0, 0, 0
	for _, g := range s.Groups {
		for _, mb := range g.Micro {
			rows += mb.B
			for _, m := range mb.Mask {
				tokens += int(m)
			}
			positions += len(mb.Index)
			if len(mb.Targets) != len(mb.Index) || len(mb.Allowed) != len(mb.Index) || len(mb.IDs) != mb.B*mb.T {
				t.Fatalf("step %d: inconsistent micro-batch lengths", s.Step)
			}
			for p, slot := range mb.Index {
				if (slot+1)%int64(mb.T) == 0 || mb.IDs[slot+1] != int64(mb.Targets[p]) || !slices.Contains(mb.Allowed[p], mb.Targets[p]) {
					t.Fatalf("step %d, position %d: slot %d does not predict target %d among its allowed tokens", s.Step, p, slot, mb.Targets[p])
				}
			}
		}
	}
	if tokens != s.Tokens || positions != s.Positions || rows != b.Batch {
		t.Errorf("step %d: %d tokens, %d positions, %d rows; header says %d, %d; batch %d", s.Step, tokens, positions, rows, s.Tokens, s.Positions, b.Batch)
	}
}

// TestWriteTrainDumpRefusesOtherSteps: a dump whose rebuilt steps differ from the ones measured
// (here: claimed token counts) is an error, not a silently different replay.
func TestWriteTrainDumpRefusesOtherSteps(t *testing.T) {
	o := tinyTrainOptions(t, lossgrad.MSL)
	o.MaxSteps = 2
	ran := []stepSample{{tokens: 1, positions: 1}, {tokens: 1, positions: 1}}
	sp, err := tokenize.LoadSplit(o.Data, o.Dataset, o.Split, o.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	set, err := trainset.Build(sp.Tok, sp.Prompt, sp.Items, sp.Rows[:o.Samples], o.Batch)
	if err != nil {
		t.Fatal(err)
	}
	err = writeTrainDump(filepath.Join(t.TempDir(), "dump.jsonl"), o, set, ran)
	if err == nil || !strings.Contains(err.Error(), "rebuilt") {
		t.Fatalf("error %v, want a mismatch of the rebuilt steps", err)
	}
}
