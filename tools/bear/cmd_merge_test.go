package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
)

// mergeFixture is a golden case's checkpoint and LoRA adapter.
func mergeFixture(t *testing.T) (model, adapter string) {
	t.Helper()
	c := loadGoldenCase(t, "lora_q_v")
	return initCase(t, c), filepath.Join("../../testdata/forward", c.LoRA.Dir)
}

func readFileOrFail(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMergeNeverTouchesItsInputs: an --out that is the model, lies inside it, contains it or is
// the adapter is refused before anything is written, and the inputs stay byte for byte.
func TestMergeNeverTouchesItsInputs(t *testing.T) {
	model, adapter := mergeFixture(t)
	weights := filepath.Join(model, "model.safetensors")
	before := readFileOrFail(t, weights)
	for _, c := range []struct{ out, want string }{
		{model, "is the input"},
		{filepath.Join(model, "merged"), "lies inside the input"},
		{filepath.Dir(model), "contains the input"},
		{adapter, "is the input"},
	} {
		for _, force := range []bool{false, true} {
			args := []string{"--model", model, "--adapter", adapter, "--out", c.out}
			if force {
				args = append(args, "--force")
			}
			err := mergeMain(args)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--out") {
				t.Errorf("--out %s (force %v): error %v, want %q", c.out, force, err, c.want)
			}
			if after, err := os.ReadFile(weights); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("--out %s (force %v) changed %s (%v)", c.out, force, weights, err)
			}
		}
	}
}

// TestOutFolderReplacedWholeOrRefused: `bear merge` and `bear init` into a folder that holds a
// sharded checkpoint refuse without --force; with --force the folder is replaced whole (no
// stale index or shards), its files have mode 0644, and it loads as the new checkpoint.
func TestOutFolderReplacedWholeOrRefused(t *testing.T) {
	model, adapter := mergeFixture(t)
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgPath, readFileOrFail(t, filepath.Join(model, "config.json")), 0o644)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"merge", []string{"merge", "--model", model, "--adapter", adapter, "--dtype", "fp32"}},
		{"init", []string{"init", "--config", cfgPath, "--seed", "9", "--tokenizer", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if err := initMain([]string{"--config", cfgPath, "--out", out, "--shard-bytes", "3000", "--seed", "5", "--tokenizer", ""}); err != nil {
				t.Fatal(err)
			}
			run := map[string]func([]string) error{"merge": mergeMain, "init": initMain}[c.name]
			args := append(c.args[1:], "--out", out)
			err := run(args)
			if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("non-empty --out: error %v, want a refusal naming --force", err)
			}
			if err := run(append(args, "--force")); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "model-") || e.Name() == "model.safetensors.index.json" {
					t.Errorf("--force left %s of the old checkpoint", e.Name())
				}
				if st, _ := os.Stat(filepath.Join(out, e.Name())); st.Mode().Perm() != 0o644 {
					t.Errorf("%s: mode %v, want 0644", e.Name(), st.Mode().Perm())
				}
			}
			if siblings, _ := os.ReadDir(filepath.Dir(out)); len(siblings) != 1 {
				t.Errorf("temporary folders left beside --out: %v", siblings)
			}
			ck, err := hf.Open(out)
			if err != nil || len(ck.Files) != 1 {
				t.Fatalf("replaced folder: %v, files %v", err, ck)
			}
		})
	}
}

// TestInitMergeFlagErrors: stray arguments and out-of-range values are refused before any work.
func TestInitMergeFlagErrors(t *testing.T) {
	model, adapter := mergeFixture(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	fresh := func() string { return filepath.Join(t.TempDir(), "out") }
	// A golden case's own config: no Llama-3 vocabulary, so no tokenizer is needed.
	cfgPath := filepath.Join(model, "config.json")
	small := []string{"--config", cfgPath, "--tokenizer", ""}
	for _, c := range []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{mergeMain, []string{"--model", model, "--adapter", adapter, "--out", fresh(), "extra"}, `unexpected arguments ["extra"]`},
		{mergeMain, []string{"--model", model, "--adapter", adapter, "--out", file}, "is a file"},
		{mergeMain, []string{"--model", model, "--adapter", adapter, "--out", fresh(), "--dtype", "fp8"}, `--dtype "fp8"`},
		{initMain, append([]string{"--out", fresh(), "stray"}, small...), `unexpected arguments ["stray"`},
		{initMain, append([]string{"--out", fresh(), "--std", "-1"}, small...), "--std -1"},
		{initMain, append([]string{"--out", fresh(), "--std", "0"}, small...), "--std 0"},
		{initMain, append([]string{"--out", fresh(), "--norm-jitter", "NaN"}, small...), "--norm-jitter NaN"},
		{initMain, append([]string{"--out", fresh(), "--shard-bytes", "-1"}, small...), "--shard-bytes -1"},
		{initMain, append([]string{"--out", file}, small...), "is a file"},
	} {
		out := c.args[slices.Index(c.args, "--out")+1]
		err := c.run(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
		if out != file {
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%v: wrote %s before refusing", c.args, out)
			}
		}
	}
}
