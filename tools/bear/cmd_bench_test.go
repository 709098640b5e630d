package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchTrainArgs are the flags every `bear bench train` case shares: the tiny fixture, one
// thread, steps of 4 sequences in two norm groups of 2.
func benchTrainArgs(f *trainFixture) []string {
	return []string{"--model", f.model, "--data", f.data, "--tokenizer", f.tok, "--cache-dir", filepath.Join(f.dir, "cache"),
		"--threads", "1", "--batch", "4", "--norm-group", "2", "--micro-batch", "1", "--lora-r", "4", "--dataset", "Office"}
}

// TestBenchTrainCommand: one JSON line with the figures the issue asks for, and a dump.
func TestBenchTrainCommand(t *testing.T) {
	f := newTrainFixture(t)
	dump := filepath.Join(f.dir, "dump.jsonl")
	var out bytes.Buffer
	if err := benchMain(append([]string{"train"}, append(benchTrainArgs(f), "--loss", "msl", "--steps", "1", "--dump", dump)...), &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("%d lines printed, want one JSON line:\n%s", n, out.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	for _, key := range []string{"tokens_per_s", "step_ms", "ort_ms", "go_ms", "cpu_ms", "peak_rss_mb"} {
		if v, ok := got[key].(float64); !ok || v < 0 || (key != "go_ms" && v == 0) {
			t.Errorf("%s = %v", key, got[key])
		}
	}
	if got["steps"] != 1.0 || got["loss"] != "msl" || got["threads"] != 1.0 {
		t.Errorf("run description: %s", out.String())
	}
	if st, err := os.Stat(dump); err != nil || st.Size() == 0 {
		t.Errorf("dump: %v", err)
	}
}

// TestBenchTrainBadFlags: every invalid flag is an error naming it, before any work, and never
// a panic.
func TestBenchTrainBadFlags(t *testing.T) {
	f := newTrainFixture(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"zero steps", []string{"--steps", "0"}, "--steps 0"},
		{"negative steps", []string{"--steps", "-3"}, "--steps -3"},
		{"zero batch", []string{"--batch", "0"}, "--batch 0"},
		{"negative batch", []string{"--batch", "-4"}, "--batch -4"},
		{"zero micro-batch", []string{"--micro-batch", "0"}, "--micro-batch 0"},
		{"negative micro-batch", []string{"--micro-batch", "-1"}, "--micro-batch -1"},
		{"zero norm group", []string{"--norm-group", "0"}, "--norm-group 0"},
		{"batch not a multiple of the norm group", []string{"--batch", "5"}, "--batch 5: not a multiple"},
		{"zero bucket", []string{"--bucket", "0"}, "--bucket 0"},
		{"negative threads", []string{"--threads", "-2"}, "--threads -2"},
		{"negative samples", []string{"--samples", "-1"}, "--samples -1"},
		{"unknown loss", []string{"--loss", "mse"}, "--loss"},
		{"zero lr", []string{"--lr", "0"}, "--lr"},
		{"zero LoRA rank", []string{"--lora-r", "0"}, "--lora-r 0"},
		{"unknown policy", []string{"--policy", "keep"}, "--policy"},
		{"a run's --out", []string{"--out", filepath.Join(f.dir, "run")}, "--out describes a whole run"},
		{"a run's --epochs", []string{"--epochs", "2"}, "--epochs describes a whole run"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"not an integer", []string{"--steps", "many"}, "invalid value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"train"}, benchTrainArgs(f)...), "--loss", "bear")
			var out bytes.Buffer
			err := shown("bench", benchMain(append(args, c.args...), &out))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q before failing", out.String())
			}
		})
	}
	for _, missing := range []string{"--model", "--data", "--loss"} {
		var args []string
		for _, a := range [][]string{{"--model", f.model}, {"--data", f.data}, {"--loss", "bear"}} {
			if a[0] != missing {
				args = append(args, a...)
			}
		}
		if err := benchMain(append([]string{"train"}, args...), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("without %s: error %v", missing, err)
		}
	}
}
