package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGradMatchesPyTorch: `bear grad` on a one-sequence LoRA golden case prints, under PEFT's
// names, the LoRA gradients PyTorch autograd gives for the same cotangent (1e-4 relative).
func TestGradMatchesPyTorch(t *testing.T) {
	c := loadGoldenCase(t, "lora_q_v_single")
	model := initCase(t, c)
	dir := t.TempDir()
	cot, _ := json.Marshal(map[string]any{"cotangent": c.Cotangent})
	cotPath := filepath.Join(dir, "cot.json")
	os.WriteFile(cotPath, cot, 0o644)
	for _, policy := range []string{"stash", "recompute"} {
		var out bytes.Buffer
		err := gradMain([]string{"--model", model, "--adapter", filepath.Join("../../testdata/forward", c.LoRA.Dir),
			"--ids", idList(c.Sequences[0]), "--cotangent", cotPath, "--policy", policy, "--threads", "1"}, &out)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Grads map[string][][]float64 `json:"grads"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Grads) != len(c.LoRAGrads) || len(got.Grads) == 0 {
			t.Fatalf("%d gradients, golden has %d", len(got.Grads), len(c.LoRAGrads))
		}
		for key, ref := range c.LoRAGrads {
			g, ok := got.Grads[key]
			if !ok {
				t.Fatalf("no gradient printed for %s", key)
			}
			scale, diff := 0.0, 0.0
			for i := range ref {
				for j := range ref[i] {
					scale = math.Max(scale, math.Abs(ref[i][j]))
					diff = math.Max(diff, math.Abs(g[i][j]-ref[i][j]))
				}
			}
			if diff > 1e-4*scale {
				t.Errorf("%s %s: max difference %.3g, largest entry %.3g: want ≤ 1e-4 relative", policy, key, diff, scale)
			}
		}
	}
}

func TestExportWritesArtifacts(t *testing.T) {
	c := loadGoldenCase(t, "untied_mha_plain_rope")
	model := initCase(t, c)
	out := filepath.Join(t.TempDir(), "art")
	var log bytes.Buffer
	if err := exportMain([]string{"--model", model, "--out", out, "--policy", "recompute", "--lora-r", "4", "--cache-dir", t.TempDir()}, &log); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"forward.onnx", "backward.onnx", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	var m struct {
		Policy        string            `json:"policy"`
		CheckpointSHA map[string]string `json:"checkpoint_sha256"`
		ForwardInputs []struct {
			Name  string
			Shape []string
		} `json:"forward_inputs"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Policy != "recompute" || len(m.CheckpointSHA) != 1 || len(m.ForwardInputs) == 0 || strings.Join(m.ForwardInputs[0].Shape, ",") != "batch,seq" {
		t.Errorf("manifest: %s", data)
	}
	for _, bad := range [][]string{
		{"--model", model, "--out", out, "--policy", "lazy"},
		{"--model", model, "--out", out, "--lora-targets", "wq"},
		{"--model", model, "--out", out, "--train", "half"},
	} {
		if err := exportMain(bad, &log); err == nil {
			t.Errorf("bear export %v succeeded", bad)
		}
	}
}

func TestMergeCommand(t *testing.T) {
	c := loadGoldenCase(t, "lora_q_v")
	model := initCase(t, c)
	out := filepath.Join(t.TempDir(), "merged")
	adapter := filepath.Join("../../testdata/forward", c.LoRA.Dir)
	if err := mergeMain([]string{"--model", model, "--adapter", adapter, "--out", out, "--dtype", "fp32"}); err != nil {
		t.Fatal(err)
	}
	// The merged model's logits equal the base model's with the adapter applied.
	ids := idList(c.Sequences[0])
	var a, b bytes.Buffer
	if err := forwardMain([]string{"--model", out, "--ids", ids, "--positions", "all"}, &a); err != nil {
		t.Fatal(err)
	}
	if err := forwardMain([]string{"--model", model, "--adapter", adapter, "--ids", ids, "--positions", "all"}, &b); err != nil {
		t.Fatal(err)
	}
	var la, lb struct{ Logits [][]float64 }
	json.Unmarshal(a.Bytes(), &la)
	json.Unmarshal(b.Bytes(), &lb)
	if len(la.Logits) == 0 || len(la.Logits) != len(lb.Logits) {
		t.Fatalf("%d vs %d rows", len(la.Logits), len(lb.Logits))
	}
	for i := range la.Logits {
		for j := range la.Logits[i] {
			if math.Abs(la.Logits[i][j]-lb.Logits[i][j]) > 1e-5 {
				t.Fatalf("row %d logit %d: merged %g, with adapter %g", i, j, la.Logits[i][j], lb.Logits[i][j])
			}
		}
	}
	if err := mergeMain([]string{"--model", model, "--adapter", adapter, "--out", out, "--dtype", "fp8"}); err == nil {
		t.Error("--dtype fp8 accepted")
	}
}
