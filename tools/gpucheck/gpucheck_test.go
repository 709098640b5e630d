//go:build gpucheck

package gpucheck

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// Tolerances of the comparisons, relative to the largest magnitude of the CPU's values (TF32
// off on the device): float32 sums in another order differ by a few ulps per layer, and five
// AdamW steps, which divide by the square root of small second moments, amplify differences.
const (
	logitTol   = 1e-4
	gradTol    = 1e-4
	adapterTol = 1e-3
	scoreTol   = 1e-4 // absolute, on the hypotheses' scores (log-probabilities)
)

const officeData = "../../testdata/office"

var (
	device ortrun.Device // the device compared with the CPU
	root   string        // models and outputs of this run
)

// TestMain loads ONNX Runtime for the device (the CUDA build of `make deps-cuda`, which runs
// the CPU provider too) and writes the tiny and small checkpoints.
func TestMain(m *testing.M) {
	device = ortrun.CUDA
	if os.Getenv("BEAR_GPUCHECK_DEVICE") == "cpu" {
		device = ortrun.CPU
	}
	if err := ortrun.InitDevice("", device); err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "bear-gpucheck-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runtimes are the CPU's options and the device's: the CPU side with one thread and the
// device side with two when both are the CPU, so that even then the two sum in other orders.
func runtimes(cache string) (cpu, dev ortrun.ModelOptions) {
	cpu = ortrun.ModelOptions{SessionOptions: ortrun.SessionOptions{Device: ortrun.CPU, Threads: 1}, CacheDir: cache}
	dev = ortrun.ModelOptions{SessionOptions: ortrun.SessionOptions{Device: device, Threads: 2, NoTF32: true}, CacheDir: cache}
	return cpu, dev
}

// model writes (once) a random checkpoint of the preset.
func model(t *testing.T, preset string) string {
	t.Helper()
	dir := filepath.Join(root, preset)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir
	}
	p, err := hf.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 7, Std: 0.25}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// relDiff is the largest difference of a and b relative to the largest magnitude in a.
func relDiff[T float32 | float64](a, b []T) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(a[i])))
	}
	return d / max(m, 1e-30)
}

// TestRelDiff: the measure the comparisons use sees a difference of one value.
func TestRelDiff(t *testing.T) {
	a := []float32{1, -4, 2}
	if d := relDiff(a, a); d != 0 {
		t.Errorf("equal slices differ by %g", d)
	}
	if d := relDiff(a, []float32{1, -4, 2.001}); math.Abs(d-0.001/4) > 1e-7 {
		t.Errorf("one value off by 0.001: %g, want %g", d, 0.001/4)
	}
	if d := relDiff(a, []float32{1, float32(math.NaN()), 2}); !math.IsNaN(d) && d <= logitTol {
		t.Errorf("a NaN passes as %g", d)
	}
}

// TestForwardLogits: the logits of every position of three prompts.
func TestForwardLogits(t *testing.T) {
	for _, preset := range []string{"tiny", "small"} {
		ck, err := hf.Open(model(t, preset))
		if err != nil {
			t.Fatal(err)
		}
		cpuOpts, devOpts := runtimes(filepath.Join(root, "cache"))
		seqs := [][]int64{{128000, 791, 6864, 315}, {128000, 40, 1093}, {128000, 9906, 1917, 11, 1268, 527, 499}}
		b := ortrun.NewTokenBatch(seqs)
		var index []int64
		for i, s := range seqs {
			for p := range s {
				index = append(index, b.Index(i, p))
			}
		}
		logits := func(o ortrun.ModelOptions) ([]float32, time.Duration) {
			m, err := ortrun.Load(ck, o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			m.Logits(b, index, nil, 0) // warm-up
			t0 := time.Now()
			l, err := m.Logits(b, index, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			return l, time.Since(t0)
		}
		want, tc := logits(cpuOpts)
		got, td := logits(devOpts)
		d := relDiff(want, got)
		report(t, "forward %s: logits of %d positions differ by %.2e (relative; tolerance %.0e); %v on the CPU, %v on %s%s",
			preset, len(index), d, logitTol, tc.Round(time.Microsecond), td.Round(time.Microsecond), device, deviceMemory())
		if d > logitTol || math.IsNaN(d) {
			t.Errorf("forward %s: logits differ by %.2e", preset, d)
		}
	}
}

// TestLoRAGradients: the gradients of <logits, cotangent> with respect to a random LoRA
// adapter (r 4 on q_proj and v_proj, B not zero), under both memory policies' graphs.
func TestLoRAGradients(t *testing.T) {
	ck, err := hf.Open(model(t, "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	spec := llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}
	ids := []int64{128000, 791, 6864, 315, 9822, 374}
	b := ortrun.NewTokenBatch([][]int64{ids})
	index := make([]int64, len(ids))
	for i := range index {
		index[i] = b.Index(0, i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var adapter *peft.Adapter
	var cot []float32
	grads := func(o ortrun.ModelOptions) (map[string][]float32, time.Duration) {
		o.LoRA = &spec
		tr, err := ortrun.NewTrainer[float32](ck, ortrun.TrainOptions{Model: o})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if adapter == nil {
			adapter = &peft.Adapter{Spec: spec, Weights: map[string][]float32{}}
			for _, in := range tr.Manifest.LoRAInputs {
				w := make([]float32, in.Rows*in.Cols)
				for i := range w {
					w[i] = float32(rng.NormFloat64() * 0.1)
				}
				adapter.Weights[in.Name] = w
			}
			cot = make([]float32, len(ids)*ck.Config.VocabSize)
			for i := range cot {
				cot[i] = float32(rng.NormFloat64())
			}
		}
		if err := tr.SetAdapter(adapter); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := tr.Forward(ortrun.GraphInputs{Batch: b, Index: index}); err != nil {
			t.Fatal(err)
		}
		g, err := tr.Backward(cot)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]float32{}
		for k, v := range g {
			out[k] = append([]float32(nil), v...)
		}
		return out, time.Since(t0)
	}
	cpuOpts, devOpts := runtimes(filepath.Join(root, "cache"))
	want, tc := grads(cpuOpts)
	got, td := grads(devOpts)
	worst := 0.0
	for name, w := range want {
		d := relDiff(w, got[name])
		worst = max(worst, d)
		if d > gradTol || math.IsNaN(d) {
			t.Errorf("gradient %s differs by %.2e", name, d)
		}
	}
	report(t, "LoRA gradients (tiny, %d matrices): differ by %.2e at most (relative; tolerance %.0e); forward+backward %v on the CPU, %v on %s%s",
		len(want), worst, gradTol, tc.Round(time.Microsecond), td.Round(time.Microsecond), device, deviceMemory())
}

// TestTrainSteps: five optimizer steps of a BEAR LoRA run (bear train) give the same adapter.
func TestTrainSteps(t *testing.T) {
	tiny, out := model(t, "tiny"), t.TempDir()
	run := func(name string, o ortrun.ModelOptions) (string, time.Duration) {
		opts := train.DefaultOptions()
		opts.Model, opts.Data, opts.Tokenizer = tiny, officeData, testdeps.Tokenizer(t)
		opts.Out = filepath.Join(out, "train-"+name)
		opts.Samples, opts.Epochs, opts.MaxSteps, opts.LR, opts.Warmup = 40, 1, 5, 5e-3, 1
		opts.Loss = lossgrad.DefaultConfig(lossgrad.BEAR)
		opts.Batch = trainset.Options{Batch: 8, NormGroup: 4, Micro: 2, Seed: 42, Bucket: 16}
		opts.LoRA = &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}
		opts.LoRADropout = 0
		opts.Runtime = o
		t0 := time.Now()
		if _, err := train.Run(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(opts.Out, "final"), time.Since(t0)
	}
	cpuOpts, devOpts := runtimes(filepath.Join(root, "cache"))
	wantDir, tc := run("cpu", cpuOpts)
	gotDir, td := run("device", devOpts)
	cfg, err := hf.ReadConfig(tiny)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peft.ReadAdapter(wantDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := peft.ReadAdapter(gotDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for name, w := range want.Weights {
		d := relDiff(w, got.Weights[name])
		worst = max(worst, d)
		if d > adapterTol || math.IsNaN(d) {
			t.Errorf("adapter %s differs by %.2e after 5 steps", name, d)
		}
	}
	report(t, "train (tiny, BEAR, 5 steps of 8 sequences): adapters differ by %.2e at most (relative; tolerance %.0e); %v on the CPU, %v on %s (graph building included)%s",
		worst, adapterTol, tc.Round(time.Millisecond), td.Round(time.Millisecond), device, deviceMemory())
}

// TestEvaluation: bear eval on 8 Office test users ranks the same titles, with scores within
// scoreTol.
func TestEvaluation(t *testing.T) {
	tiny, out := model(t, "tiny"), t.TempDir()
	eval := func(name string, o ortrun.ModelOptions) ([]results.Record, float64) {
		opts := evaluate.Options{Model: tiny, Tokenizer: testdeps.Tokenizer(t), Data: officeData, Split: "test", Limit: 8,
			Batch: 4, KVCache: true, Runtime: o, Out: filepath.Join(out, "eval-"+name)}
		m, err := evaluate.Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		_, recs, err := results.Read(opts.Out)
		if err != nil {
			t.Fatal(err)
		}
		return recs, m.Timing.UsersPerS
	}
	cpuOpts, devOpts := runtimes(filepath.Join(root, "cache"))
	want, uc := eval("cpu", cpuOpts)
	got, ud := eval("device", devOpts)
	if len(want) != len(got) {
		t.Fatalf("%d users on the CPU, %d on %s", len(want), len(got), device)
	}
	worst := 0.0
	for i := range want {
		if strings.Join(want[i].Predict, "\n") != strings.Join(got[i].Predict, "\n") {
			t.Errorf("user %d: ranked titles differ:\n cpu %q\n %s %q", want[i].UserID, want[i].Predict, device, got[i].Predict)
			continue
		}
		for j := range want[i].Scores {
			worst = max(worst, math.Abs(want[i].Scores[j]-got[i].Scores[j]))
		}
	}
	if worst > scoreTol {
		t.Errorf("scores differ by %.2e (tolerance %.0e)", worst, scoreTol)
	}
	report(t, "eval (tiny, 8 users, 10 beams, KV cache): the same ranked titles, scores within %.2e (tolerance %.0e); %.2f users/s on the CPU (1 thread), %.2f on %s%s",
		worst, scoreTol, uc, ud, device, deviceMemory())
}

// report prints a result line on stdout (make gpu-check shows them) and in the test log.
func report(t *testing.T, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	fmt.Println("gpu-check:", line)
	t.Log(line)
}

// deviceMemory is this process's device memory as nvidia-smi reports it ("" off a GPU).
func deviceMemory() string {
	if device != ortrun.CUDA {
		return ""
	}
	out, err := exec.Command("nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return "; nvidia-smi: " + err.Error()
	}
	pid := strconv.Itoa(os.Getpid())
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) == 2 && strings.TrimSpace(f[0]) == pid {
			return "; device memory " + strings.TrimSpace(f[1]) + " MiB"
		}
	}
	return "; device memory: this process not listed by nvidia-smi"
}
