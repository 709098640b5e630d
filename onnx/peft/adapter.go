package peft

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// Adapter is a LoRA adapter in memory: its spec and one float32 matrix per graph LoRA input
// (A is [r, in], B is [out, r], as PEFT stores them).
type Adapter struct {
	Spec    llama.LoRASpec
	Dropout float64
	Weights map[string][]float32 // by llama.LoRAInput name
}

// Key is the name PEFT gives a LoRA matrix in adapter_model.safetensors.
func Key(layer int, module, which string) string {
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.lora_%s.weight", layer, hf.ModulePath[module], which)
}

type peftConfig struct {
	PeftType          string          `json:"peft_type"`
	TaskType          string          `json:"task_type"`
	R                 int             `json:"r"`
	LoRAAlpha         float64         `json:"lora_alpha"`
	LoRADropout       float64         `json:"lora_dropout"`
	TargetModules     json.RawMessage `json:"target_modules"`
	UseRSLoRA         bool            `json:"use_rslora"`
	UseDoRA           bool            `json:"use_dora"`
	Bias              string          `json:"bias"`
	FanInFanOut       bool            `json:"fan_in_fan_out"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	BaseModel         string          `json:"base_model_name_or_path"`
	InferenceMode     bool            `json:"inference_mode"`
}

// ReadAdapter reads a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)
// and checks it against the base model's configuration.
func ReadAdapter(dir string, cfg hf.Config) (*Adapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %w", cpath, err)
	}
	switch {
	case pc.PeftType != "" && pc.PeftType != "LORA":
		return nil, fmt.Errorf("%s: peft_type %q: only LORA is supported", cpath, pc.PeftType)
	case pc.R <= 0:
		return nil, fmt.Errorf("%s: field r = %d, want > 0", cpath, pc.R)
	case pc.UseDoRA:
		return nil, fmt.Errorf("%s: use_dora: DoRA is not supported", cpath)
	case pc.Bias != "" && pc.Bias != "none":
		return nil, fmt.Errorf("%s: bias %q: only \"none\" is supported", cpath, pc.Bias)
	case pc.FanInFanOut:
		return nil, fmt.Errorf("%s: fan_in_fan_out: not supported for Llama linear layers", cpath)
	case !isNullJSON(pc.LayersToTransform):
		return nil, fmt.Errorf("%s: layers_to_transform: adapters on a subset of layers are not supported", cpath)
	}
	var targets []string
	if err := json.Unmarshal(pc.TargetModules, &targets); err != nil || len(targets) == 0 {
		return nil, fmt.Errorf("%s: target_modules: want a non-empty list of module names", cpath)
	}
	sort.Strings(targets)
	spec := llama.LoRASpec{Targets: targets, Rank: pc.R, Alpha: pc.LoRAAlpha, RSLoRA: pc.UseRSLoRA}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	wpath := filepath.Join(dir, "adapter_model.safetensors")
	ts, _, err := hf.ReadSafetensorsHeader(wpath)
	if err != nil {
		return nil, err
	}
	a := &Adapter{Spec: spec, Dropout: pc.LoRADropout, Weights: map[string][]float32{}}
	for _, in := range spec.Inputs(cfg) {
		key := Key(in.Layer, in.Module, in.Which)
		t, ok := ts[key]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is missing", wpath, key)
		}
		if len(t.Shape) != 2 || t.Shape[0] != int64(in.Rows) || t.Shape[1] != int64(in.Cols) {
			return nil, fmt.Errorf("%s: tensor %s: shape %v, want [%d %d]", wpath, key, t.Shape, in.Rows, in.Cols)
		}
		vals, err := t.ReadFloat32()
		if err != nil {
			return nil, err
		}
		a.Weights[in.Name] = vals
	}
	return a, nil
}

// WriteAdapter writes a in PEFT's layout, float32, loadable by PeftModel.from_pretrained.
func WriteAdapter(dir string, a *Adapter, cfg hf.Config, baseModel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pc := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.Spec.Rank, "lora_alpha": a.Spec.Alpha,
		"lora_dropout": a.Dropout, "target_modules": a.Spec.Targets, "use_rslora": a.Spec.RSLoRA,
		"use_dora": false, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
		"base_model_name_or_path": baseModel, "layers_to_transform": nil, "init_lora_weights": true,
		"modules_to_save": nil, "revision": nil,
	}
	data, _ := json.MarshalIndent(pc, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var ts []hf.WriteTensor
	for _, in := range a.Spec.Inputs(cfg) {
		vals, ok := a.Weights[in.Name]
		if !ok || len(vals) != in.Rows*in.Cols {
			return fmt.Errorf("adapter: %s has %d values, want %d", in.Name, len(vals), in.Rows*in.Cols)
		}
		ts = append(ts, hf.Float32Tensor(Key(in.Layer, in.Module, in.Which), hf.F32, []int64{int64(in.Rows), int64(in.Cols)}, vals))
	}
	return hf.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"})
}

// Matches reports, as an error naming both, whether the adapter's spec differs from the LoRA
// inputs a graph was built with.
func (a *Adapter) Matches(graph llama.LoRASpec) error {
	s := a.Spec
	if s.Rank != graph.Rank || s.Alpha != graph.Alpha || s.RSLoRA != graph.RSLoRA || fmt.Sprint(s.Targets) != fmt.Sprint(graph.Targets) {
		return fmt.Errorf("adapter (r %d, alpha %g, targets %v) does not match the graph (r %d, alpha %g, targets %v)",
			s.Rank, s.Alpha, s.Targets, graph.Rank, graph.Alpha, graph.Targets)
	}
	return nil
}

func isNullJSON(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }
