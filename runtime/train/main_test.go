package train

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bearrec/bear/internal/mpirun"
	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// TestMain loads ONNX Runtime once (a missing library fails, never skips: make deps fetches it)
// and serves as the child process of the interruption tests.
func TestMain(m *testing.M) {
	if err := ortrun.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, "train tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	mpirun.Dispatch(mpiChildren) // a rank of an MPI test (mpi_test.go)
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// mpiChildren are the functions the ranks of the MPI tests run (set by mpi_test.go, built with
// the mpi tag).
var mpiChildren map[string]func() error

// officeData is the committed Office dataset (testdata/office/README.md).
var officeData = filepath.Join("..", "..", "testdata", "office")

var (
	tinyOnce sync.Once
	tinyDir  string
	tinyErr  error
)

// tinyModel writes the `tiny` preset (random bf16 weights, seed 7) once per test binary.
func tinyModel(t testing.TB) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bear-train-tiny-")
		if err != nil {
			tinyErr = err
			return
		}
		p, _ := hf.LookupPreset("tiny")
		tinyDir, tinyErr = filepath.Join(dir, "tiny"), hf.WriteRandom(filepath.Join(dir, "tiny"), p.Config, hf.InitOptions{Seed: 7})
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyDir
}

// smallRun is a short run on the tiny model: 48 Office rows, steps of 8 sequences in two norm
// groups of 4, micro-batches of 2, two epochs (12 optimizer steps), one ORT thread.
func smallRun(model, tok, out string, kind lossgrad.Kind) Options {
	o := DefaultOptions()
	o.Model, o.Data, o.Tokenizer, o.Out = model, officeData, tok, out
	o.Samples, o.Epochs, o.LR, o.Warmup, o.CheckpointEvery = 48, 2, 5e-3, 2, 2
	o.Loss = lossgrad.DefaultConfig(kind)
	o.Batch = trainset.Options{Batch: 8, NormGroup: 4, Micro: 2, Seed: 42, Bucket: 16}
	o.LoRA = &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}
	o.Runtime = ortrun.ModelOptions{SessionOptions: ortrun.SessionOptions{Threads: 1}, CacheDir: filepath.Join(out, "..", "cache")}
	return o
}

// tokenizer is the Llama-3.2 tokenizer that make deps fetched.
func tokenizer(t testing.TB) string { return testdeps.Tokenizer(t) }
