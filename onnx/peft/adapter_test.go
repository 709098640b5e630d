package peft

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

func tinyConfig(t *testing.T) hf.Config {
	t.Helper()
	p, err := hf.LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	return p.Config
}

// writeTestAdapter writes a q/v adapter of rank 2 for cfg with distinct values, plus the extra
// tensors given (name → shape), in PEFT's layout.
func writeTestAdapter(t *testing.T, cfg hf.Config, extra map[string][]int64) (string, *Adapter) {
	t.Helper()
	spec := llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 2, Alpha: 4}
	a := &Adapter{Spec: spec, Weights: map[string][]float32{}}
	var ts []hf.WriteTensor
	for k, in := range spec.Inputs(cfg) {
		vals := make([]float32, in.Rows*in.Cols)
		for i := range vals {
			vals[i] = float32(k) + float32(i)/1024
		}
		a.Weights[in.Name] = vals
		ts = append(ts, hf.Float32Tensor(Key(in.Layer, in.Module, in.Which), hf.F32, []int64{int64(in.Rows), int64(in.Cols)}, vals))
	}
	dir := t.TempDir()
	if err := WriteAdapter(dir, a, cfg, "base"); err != nil {
		t.Fatal(err)
	}
	for name, shape := range extra {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		ts = append(ts, hf.Float32Tensor(name, hf.F32, shape, make([]float32, n)))
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir, a
}

func TestReadAdapterRoundTrip(t *testing.T) {
	cfg := tinyConfig(t)
	dir, want := writeTestAdapter(t, cfg, nil)
	got, err := ReadAdapter(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Matches(want.Spec); err != nil {
		t.Fatal(err)
	}
	for name, w := range want.Weights {
		if !slices.Equal(got.Weights[name], w) {
			t.Errorf("%s differs after the round trip", name)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "adapter_config.json"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("adapter_config.json mode %v (%v), want 0644", st.Mode().Perm(), err)
	}
}

// TestReadAdapterRefusesUnmatchedTensors: a tensor that no target module of the configuration
// claims is an error naming it and saying why, never silently dropped.
func TestReadAdapterRefusesUnmatchedTensors(t *testing.T) {
	cfg := tinyConfig(t)
	upA := "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"
	qA9 := "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight"
	for _, c := range []struct {
		name  string
		extra map[string][]int64
		want  []string
	}{
		{"module outside target_modules", map[string][]int64{upA: {2, 64}}, []string{upA, "up_proj is not in target_modules [q_proj, v_proj]"}},
		{"layer past the model", map[string][]int64{qA9: {2, 64}}, []string{qA9, "layer 9", "2 layers"}},
		{"not a LoRA key", map[string][]int64{"lm_head.weight": {4}}, []string{"lm_head.weight", "[q_proj, v_proj]"}},
		{"several", map[string][]int64{upA: {2, 64}, qA9: {2, 64}}, []string{upA, "and 1 more"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _ := writeTestAdapter(t, cfg, c.extra)
			_, err := ReadAdapter(dir, cfg)
			if err == nil {
				t.Fatal("adapter with unmatched tensors accepted")
			}
			for _, w := range append(c.want, "adapter_model.safetensors") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseAdapterConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"r":0,"target_modules":["q_proj"]}`, "r = 0"},
		{`{"r":4,"target_modules":[]}`, "target_modules"},
		{`{"r":4,"target_modules":"q_proj"}`, "target_modules"},
		{`{"r":4,"target_modules":["wq"]}`, `"wq"`},
		{`{"r":4,"target_modules":["q_proj"],"lora_dropout":1}`, "lora_dropout = 1"},
		{`{"r":4,"target_modules":["q_proj"],"lora_dropout":-0.1}`, "lora_dropout = -0.1"},
		{`{"r":4,"target_modules":["q_proj"],"use_dora":true}`, "DoRA"},
		{`{"r":4,"target_modules":["q_proj"],"peft_type":"IA3"}`, "IA3"},
		{`{"r":4,"target_modules":["q_proj"],"layers_to_transform":[0]}`, "layers_to_transform"},
		{`{"r":4`, "malformed JSON"},
	} {
		if _, _, err := parseAdapterConfig([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.json, err, c.want)
		}
	}
	spec, _, err := parseAdapterConfig([]byte(`{"r":4,"lora_alpha":8,"target_modules":["v_proj","q_proj","v_proj"]}`))
	if err != nil || !slices.Equal(spec.Targets, []string{"q_proj", "v_proj"}) {
		t.Errorf("targets %v (%v), want the sorted set [q_proj v_proj]", spec.Targets, err)
	}
}
