package evaluate

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
)

// officeData is the committed Office sample (testdata/office/README.md).
var officeData = filepath.Join("..", "..", "testdata", "office")

// tinyDir is a random tiny Llama-3.2 checkpoint written once for the package's tests, cacheDir
// its float32 weight cache.
var tinyDir, cacheDir string

// tinyStd is the weight scale of the test checkpoint: larger than HF's 0.02 so that the random
// model's scores are far from ties (KV-cache and no-cache runs differ by float rounding, about
// 1e-6, and must rank the same items in the same order).
const tinyStd = 0.25

// TestMain loads ONNX Runtime and writes the tiny checkpoint. A missing library is a failure,
// never a skip: `make test` fetches it first (make deps).
func TestMain(m *testing.M) {
	if err := ortrun.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, "evaluate tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "bear-eval-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		p, err := hf.LookupPreset("tiny")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tinyDir, cacheDir = filepath.Join(dir, "tiny"), filepath.Join(dir, "cache")
		if err := hf.WriteRandom(tinyDir, p.Config, hf.InitOptions{Seed: 7, Std: tinyStd}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		debug.SetGCPercent(200)
		return m.Run()
	}()
	os.Exit(code)
}

// tinyOptions evaluates the Office sample with the tiny checkpoint (KV cache on) into out.
func tinyOptions(t testing.TB, out string, limit int) Options {
	return Options{
		Model: tinyDir, Tokenizer: testdeps.Tokenizer(t), Data: officeData, Split: "test", Limit: limit,
		Batch: 4, KVCache: true, Runtime: ortrun.ModelOptions{CacheDir: cacheDir}, Out: out,
	}
}
