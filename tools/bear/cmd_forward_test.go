package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/forwardcases"
)

type goldenCase = forwardcases.Case

func loadGoldenCase(t *testing.T, name string) goldenCase {
	t.Helper()
	cases, err := forwardcases.Load("../../testdata/forward")
	if err != nil {
		t.Fatal(err)
	}
	c, err := forwardcases.Find(cases, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// initCase writes the case's checkpoint with `bear init --config`, as the reference did.
func initCase(t *testing.T, c goldenCase) string {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, c.Config, 0o644)
	model := filepath.Join(dir, "model")
	err := initMain([]string{"--config", cfgPath, "--out", model, "--seed", fmt.Sprint(c.Init.Seed), "--std", fmt.Sprint(c.Init.Std),
		"--norm-jitter", fmt.Sprint(c.Init.NormJitter), "--dtype", c.Init.DType, "--tokenizer", ""})
	if err != nil {
		t.Fatal(err)
	}
	return model
}

func idList(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}

// TestInitThenForward runs `bear init --config` and `bear forward` on a golden case and checks
// the printed logits against the PyTorch reference (1e-4, as in runtime's parity test).
func TestInitThenForward(t *testing.T) {
	c := loadGoldenCase(t, "untied_mha_plain_rope") // one sequence, positions from 0: what `bear forward` runs
	model := initCase(t, c)
	ids := idList(c.Sequences[0])
	var out bytes.Buffer
	if err := forwardMain([]string{"--model", model, "--ids", ids, "--positions", "all", "--threads", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Positions []int       `json:"positions"`
		Logits    [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := c.Logits
	if len(got.Logits) != len(want) || len(got.Positions) != len(want) {
		t.Fatalf("%d rows, want %d", len(got.Logits), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(got.Logits[i][j] - want[i][j]); d > 1e-4 {
				t.Fatalf("row %d logit %d: %g, reference %g", i, j, got.Logits[i][j], want[i][j])
			}
		}
	}

	// --top 3 at the last position lists the three largest logits in order.
	out.Reset()
	if err := forwardMain([]string{"--model", model, "--ids", ids, "--top", "3"}, &out); err != nil {
		t.Fatal(err)
	}
	var top struct {
		Positions []int `json:"positions"`
		Top       [][]struct {
			ID    int     `json:"id"`
			Logit float64 `json:"logit"`
		} `json:"top"`
	}
	if err := json.Unmarshal(out.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	last := want[len(want)-1]
	best := 0
	for j := range last {
		if last[j] > last[best] {
			best = j
		}
	}
	if len(top.Top) != 1 || len(top.Top[0]) != 3 || top.Top[0][0].ID != best || top.Positions[0] != len(c.Sequences[0])-1 {
		t.Fatalf("top: %+v, want best id %d at position %d", top, best, len(c.Sequences[0])-1)
	}
}

func TestForwardFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ids", "1"}, "--model is required"},
		{[]string{"--model", "x"}, "give --ids or --text"},
		{[]string{"--model", "x", "--ids", "1,a"}, `entry 1 "a"`},
		{[]string{"--model", "x", "--ids", "1,2", "--positions", "5"}, "not a position in [0, 2)"},
		{[]string{"--model", "/nonexistent", "--ids", "1"}, "config.json"},
	} {
		err := forwardMain(c.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bear forward %v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestInitPresetErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--preset", "tiny"}, "--out is required"},
		{[]string{"--preset", "huge", "--out", t.TempDir()}, `unknown preset "huge"`},
		{[]string{"--out", t.TempDir()}, "exactly one of --preset and --config"},
		{[]string{"--preset", "tiny", "--out", t.TempDir(), "--dtype", "fp8"}, `--dtype "fp8"`},
	} {
		err := initMain(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bear init %v: error %v, want %q", c.args, err, c.want)
		}
	}
}

// TestInitLargePresetWritesConfigOnly: the real 1B shape without --weights writes no weights.
func TestInitLargePresetWritesConfigOnly(t *testing.T) {
	dir := t.TempDir()
	if err := initMain([]string{"--preset", "llama-3.2-1b", "--out", dir, "--tokenizer", "/dev/null"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Error("weights written without --weights")
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(data), `"num_hidden_layers": 16`) {
		t.Errorf("config.json: %s %v", data, err)
	}
}
