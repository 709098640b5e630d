package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"

	"github.com/bearrec/bear/onnx/hf"
)

// TestEvalCommand is the end-to-end check of issue 6: `bear eval --limit 50` on a random
// tiny Llama-3.2 checkpoint with the real tokenizer and the committed Office sample, then two
// shards merged with --merge.
func TestEvalCommand(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	model := writeTinyModel(t, filepath.Join(dir, "tiny"))
	data := filepath.Join("..", "..", "testdata", "office")
	common := []string{"--model", model, "--tokenizer", tok, "--data", data, "--cache-dir", filepath.Join(dir, "cache")}
	run := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := evalMain(append(append([]string{}, common...), args...), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}

	out := filepath.Join(dir, "eval50")
	stdout, stderr, err := run("--limit", "50", "--out", out, "--official-match")
	if err != nil {
		t.Fatalf("bear eval: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(stdout, "official_match  NDCG@1 ") || !strings.Contains(stdout, "item_match      NDCG@1 ") || !strings.Contains(stdout, "users 50 (shard 0/1)") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, "users/s") {
		t.Errorf("no progress bar with users/s on stderr:\n%s", stderr)
	}
	var m struct {
		ItemMatch     map[string]float64 `json:"item_match"`
		OfficialMatch map[string]float64 `json:"official_match"`
		Users         int                `json:"users"`
		Config        map[string]any     `json:"config"`
	}
	readJSONFile(t, filepath.Join(out, "metrics.json"), &m)
	if m.Users != 50 || len(m.ItemMatch) != 6 || len(m.OfficialMatch) != 6 || m.Config["kv_cache"] != true || m.Config["dataset"] != "Office" || m.Config["constrain"] != "after" {
		t.Errorf("metrics.json: %+v", m)
	}
	var preds []map[string]any
	readJSONFile(t, filepath.Join(out, "predictions.json"), &preds)
	if len(preds) != 50 {
		t.Fatalf("%d predictions", len(preds))
	}
	for _, k := range []string{"instruction", "input", "output", "predict", "scores", "bear_user_id", "bear_target_item", "bear_predict_items", "bear_rank", "bear_official_rank"} {
		if _, ok := preds[0][k]; !ok {
			t.Errorf("predictions.json lacks %q", k)
		}
	}
	if n := len(preds[0]["predict"].([]any)); n != 10 {
		t.Errorf("%d predictions per user, want 10", n)
	}

	// Two shards of the first 10 users, merged, equal the unsharded run of the same 10.
	whole := filepath.Join(dir, "whole")
	if _, stderr, err := run("--limit", "10", "--out", whole, "--no-progress"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var shards []string
	for _, s := range []string{"0/2", "1/2"} {
		d := filepath.Join(dir, "shard"+s[:1])
		if _, stderr, err := run("--limit", "10", "--shard", s, "--batch", "3", "--out", d, "--no-progress"); err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		shards = append(shards, d)
	}
	merged := filepath.Join(dir, "merged")
	var stdoutM, stderrM bytes.Buffer
	if err := evalMain(append([]string{"--merge", "--out", merged}, shards...), &stdoutM, &stderrM); err != nil {
		t.Fatalf("merge: %v\n%s", err, stderrM.String())
	}
	var a, b struct {
		ItemMatch     map[string]float64 `json:"item_match"`
		OfficialMatch map[string]float64 `json:"official_match"`
		Users         int                `json:"users"`
	}
	readJSONFile(t, filepath.Join(whole, "metrics.json"), &a)
	readJSONFile(t, filepath.Join(merged, "metrics.json"), &b)
	if !reflect.DeepEqual(a, b) || a.Users != 10 {
		t.Errorf("merged %+v, unsharded %+v", b, a)
	}

	// Flag errors.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", filepath.Join(dir, "x"), "--constrain", "middle"}, `--constrain "middle"`},
		{[]string{"--out", filepath.Join(dir, "x"), "--shard", "2/2"}, "--shard"},
		{[]string{"--limit", "5"}, "--out is required"},
		{[]string{"--out", filepath.Join(dir, "x"), "--data", filepath.Join(dir, "nowhere")}, "cannot tell the dataset"},
	} {
		if _, _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bear eval %q: error %v, want %q", c.args, err, c.want)
		}
	}
	if err := evalMain([]string{"--merge", "--out", filepath.Join(dir, "m")}, &stdoutM, &stderrM); err == nil {
		t.Errorf("merge without folders accepted")
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestEvalSmallCatalogue: --max-new-tokens defaults to the official 128 and 0 lifts the cap;
// --beams above the trie's distinct sequences is refused naming both numbers; the ids missing
// from the catalogue are reported on stdout and in metrics.json.
func TestEvalSmallCatalogue(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	model := writeTinyModel(t, filepath.Join(dir, "tiny"))
	data := filepath.Join(dir, "Office") // three items, two titles; two ids missing from the catalogue
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "id2name4Rec.json"), []byte(`{"1": "Red Pen", "2": "Paper Clips", "3": "Red Pen"}`), 0o644)
	os.WriteFile(filepath.Join(data, "test_2.csv"), []byte("user_id,item_ids\n7,\"[1, 99, 98, 2]\"\n"), 0o644)
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		common := []string{"--model", model, "--tokenizer", tok, "--data", data, "--cache-dir", filepath.Join(dir, "cache"), "--no-progress"}
		err := evalMain(append(common, args...), &stdout, &stderr)
		return stdout.String(), shown("eval", err)
	}
	if _, err := run("--beams", "3", "--out", filepath.Join(dir, "b3")); err == nil ||
		!strings.Contains(err.Error(), "--beams 3") || !strings.Contains(err.Error(), "2 distinct item sequences (3 items") {
		t.Errorf("--beams 3 over 2 titles: %v", err)
	}
	for _, c := range []struct {
		args    []string
		wantCap float64
	}{{nil, 128}, {[]string{"--max-new-tokens", "0"}, 0}, {[]string{"--max-new-tokens", "40"}, 40}} {
		out := filepath.Join(dir, fmt.Sprint("cap", c.wantCap))
		stdout, err := run(append([]string{"--beams", "2", "--out", out}, c.args...)...)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		var m struct {
			Dropped int            `json:"dropped_item_ids"`
			Config  map[string]any `json:"config"`
		}
		readJSONFile(t, filepath.Join(out, "metrics.json"), &m)
		if m.Config["max_new_tokens"] != c.wantCap || m.Dropped != 2 {
			t.Errorf("%q: max_new_tokens %v, dropped_item_ids %d; want %v and 2", c.args, m.Config["max_new_tokens"], m.Dropped, c.wantCap)
		}
		if !strings.Contains(stdout, "dropped         2 item ids") {
			t.Errorf("%q: stdout does not report the dropped ids:\n%s", c.args, stdout)
		}
	}
}

// writeTinyModel writes a random tiny checkpoint (seed 42) at path and returns path.
func writeTinyModel(t *testing.T, path string) string {
	t.Helper()
	p, err := hf.LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.WriteRandom(path, p.Config, hf.InitOptions{Seed: 42}); err != nil {
		t.Fatal(err)
	}
	return path
}
