package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// trainFixture is a random tiny checkpoint and a data folder copied from the committed Office
// sample, with a training split the cases may replace.
type trainFixture struct {
	dir, model, other, tok, data string
}

func newTrainFixture(t *testing.T) *trainFixture {
	t.Helper()
	f := &trainFixture{dir: t.TempDir(), tok: testdeps.Tokenizer(t)}
	p, _ := hf.LookupPreset("tiny")
	f.model, f.other = filepath.Join(f.dir, "tiny"), filepath.Join(f.dir, "other")
	for i, m := range []string{f.model, f.other} {
		if err := hf.WriteRandom(m, p.Config, hf.InitOptions{Seed: uint64(42 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	f.data = f.dataWith(t, "office", "")
	return f
}

// dataWith makes a data folder named name with the Office catalogue and test sample, and a
// training split: the first 40 Office rows, or train when given.
func (f *trainFixture) dataWith(t *testing.T, name, train string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "office")
	dst := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"id2name4Rec.json", "test_5000.csv"} {
		data, err := os.ReadFile(filepath.Join(src, file))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, file), data, 0o644)
	}
	if train == "" {
		data, _ := os.ReadFile(filepath.Join(src, "train_10000.csv"))
		train = strings.Join(strings.SplitAfterN(string(data), "\n", 42)[:41], "")
	}
	os.WriteFile(filepath.Join(dst, "train_40.csv"), []byte(train), 0o644)
	return dst
}

func (f *trainFixture) train(args ...string) (string, string, error) {
	common := []string{"--tokenizer", f.tok, "--cache-dir", filepath.Join(f.dir, "cache"), "--no-progress", "--threads", "1",
		"--batch", "8", "--norm-group", "4", "--micro-batch", "4", "--lora-r", "4", "--dataset", "Office"}
	var stdout, stderr bytes.Buffer
	err := trainMain(append(common, args...), &stdout, &stderr)
	return stdout.String(), stderr.String(), shown("train", err)
}

// TestTrainCommand trains one epoch (5 optimizer steps) with BEAR and evaluates it on two test
// users, then checks the run folder: the epoch's and the final PEFT adapter, the checkpoint,
// the log with its evaluation record, and that bear plot draws it.
func TestTrainCommand(t *testing.T) {
	f := newTrainFixture(t)
	out := filepath.Join(f.dir, "run")
	stdout, stderr, err := f.train("--model", f.model, "--data", f.data, "--loss", "bear", "--out", out, "--epochs", "1", "--eval-users", "2")
	if err != nil {
		t.Fatalf("bear train: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "trained 5 steps") || !strings.Contains(stderr, "epoch 1: NDCG@10") {
		t.Errorf("stdout: %s\nstderr: %s", stdout, stderr)
	}
	// --no-progress (and any stderr that is not a terminal): plain lines, never bar frames
	if !strings.Contains(stderr, "bear train: step 1/5 (20%), loss ") || !strings.Contains(stderr, "bear train: step 5/5 (100%)") ||
		!strings.Contains(stderr, "bear: evaluation after epoch 1: 2/2 users") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on a stderr that is not a terminal:\n%q", stderr)
	}
	for _, file := range []string{"epoch-1/adapter_model.safetensors", "final/adapter_config.json", "final/adapter_model.safetensors",
		"checkpoint.safetensors", "train.jsonl", "eval-epoch-1/metrics.json"} {
		if _, err := os.Stat(filepath.Join(out, file)); err != nil {
			t.Error(err)
		}
	}
	steps, evals, err := trainlog.Read(filepath.Join(out, "train.jsonl"))
	if err != nil || len(steps) != 5 || len(evals) != 1 || evals[0].Users != 2 {
		t.Fatalf("train.jsonl: %d steps, evals %+v, %v", len(steps), evals, err)
	}
	if _, ok := evals[0].Metric("ndcg@10"); !ok {
		t.Errorf("no NDCG@10 in the evaluation record: %+v", evals[0])
	}
	var se bytes.Buffer
	if err := plotMain([]string{"--log", filepath.Join(out, "train.jsonl"), "--out", filepath.Join(f.dir, "curves.png")}, &se); err != nil {
		t.Errorf("bear plot: %v", err)
	}
	// bear eval of the adapter takes the constraint of the official inference for its loss
	evalOut := filepath.Join(f.dir, "eval")
	var eo, ee bytes.Buffer
	err = evalMain([]string{"--model", f.model, "--adapter", filepath.Join(out, "final"), "--data", f.data, "--tokenizer", f.tok,
		"--cache-dir", filepath.Join(f.dir, "cache"), "--limit", "2", "--out", evalOut}, &eo, &ee)
	var m struct {
		Config struct{ Constrain string } `json:"config"`
	}
	if err == nil {
		readJSONFile(t, filepath.Join(evalOut, "metrics.json"), &m)
	}
	if err != nil || m.Config.Constrain != "before" || !strings.Contains(ee.String(), "--constrain before: what the official inference uses for a model trained with BEAR") {
		t.Errorf("bear eval of a BEAR adapter without --constrain: %v, constrain %q\n%s", err, m.Config.Constrain, ee.String())
	}
	// resuming a finished run does nothing and says so
	stdout, _, err = f.train("--model", f.model, "--data", f.data, "--loss", "bear", "--out", out, "--resume", out, "--epochs", "1", "--eval-users", "2")
	if err != nil || !strings.Contains(stdout, "nothing to do") {
		t.Errorf("resume of a finished run: %v, %s", err, stdout)
	}
}

// TestTrainBadInput: every bad input gets a message naming the file, line or flag, and leaves
// nothing behind in --out.
func TestTrainBadInput(t *testing.T) {
	f := newTrainFixture(t)
	header := "user_id,item_ids,timestamp\n"
	finished := filepath.Join(f.dir, "finished")
	if _, stderr, err := f.train("--model", f.model, "--data", f.data, "--loss", "msl", "--out", finished, "--max-steps", "1"); err != nil {
		t.Fatalf("bear train: %v\n%s", err, stderr)
	}
	notDir := filepath.Join(f.dir, "file") // root writes through permission bits: a file stops it
	os.WriteFile(notDir, nil, 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown columns", []string{"--data", f.dataWith(t, "columns", "user,items\n1,\"[1, 2]\"\n")}, "lacks user_id or item_ids"},
		{"malformed item list", []string{"--data", f.dataWith(t, "itemlist", header+"1,\"[1, 2, x]\",0\n")}, "train_40.csv:2: item_ids"},
		{"empty split", []string{"--data", f.dataWith(t, "empty", header)}, "empty split"},
		{"no item in the catalogue", []string{"--data", f.dataWith(t, "missing", header+"1,\"[1, 2]\",0\n7,\"[999999]\",0\n")}, "train_40.csv:3: no item of the row is in the catalogue"},
		{"batch not a multiple of norm group", []string{"--batch", "6"}, "--batch 6: not a multiple of --norm-group 4"},
		{"unknown loss", []string{"--loss", "mse"}, "--loss"},
		{"negative lr", []string{"--lr", "-1"}, "--lr"},
		{"dropout out of range", []string{"--lora-dropout", "1"}, "--lora-dropout"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"more samples than rows", []string{"--samples", "100"}, "--samples 100"},
		{"unwritable out", []string{"--out", filepath.Join(notDir, "run")}, "--out"},
		{"resume with other flags", []string{"--out", finished, "--resume", finished, "--loss", "msl", "--lr", "0.001"}, "--lr"},
		{"resume from another model", []string{"--out", finished, "--resume", finished, "--loss", "msl", "--model", f.other}, "--model"},
		{"out holds a run", []string{"--out", finished, "--loss", "msl"}, "--resume"},
		{"resume elsewhere", []string{"--resume", finished}, "--resume"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(f.dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			args := []string{"--model", f.model, "--data", f.data, "--loss", "bear", "--out", out, "--max-steps", "1"}
			_, _, err := f.train(append(args, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "goroutine ") {
				t.Errorf("stack trace in the message: %v", err)
			}
			if entries, _ := os.ReadDir(out); len(entries) > 0 {
				t.Errorf("%s holds %d entries after the error", out, len(entries))
			}
		})
	}
}
