package peft

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/bearrec/bear/internal/atomicfs"
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
	return fmt.Sprintf("base_model.model.%s.lora_%s.weight", llama.ModuleName(layer, module), which)
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
// and checks it against the base model's configuration. Every LoRA matrix the configuration
// implies must be present with its shape, and every tensor of the file must be one of them: a
// tensor for a module outside target_modules (or a layer the model lacks) is an error, not
// silently dropped, since the merged or evaluated model would then differ from the trained one.
func ReadAdapter(dir string, cfg hf.Config) (*Adapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	spec, dropout, err := parseAdapterConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	wpath := filepath.Join(dir, "adapter_model.safetensors")
	ts, _, err := hf.ReadSafetensorsHeader(wpath)
	if err != nil {
		return nil, err
	}
	a := &Adapter{Spec: spec, Dropout: dropout, Weights: map[string][]float32{}}
	inputs := spec.Inputs(cfg)
	want := map[string]bool{}
	for _, in := range inputs {
		want[Key(in.Layer, in.Module, in.Which)] = true
	}
	if err := checkNoExtraTensors(ts, want, spec, cfg, wpath); err != nil {
		return nil, err
	}
	for _, in := range inputs {
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

// parseAdapterConfig parses the bytes of an adapter_config.json into the LoRA spec and the
// dropout probability, refusing what this package cannot reproduce (DoRA, biases, fan_in_fan_out,
// adapters on a subset of layers, other PEFT types).
//
// rank_pattern and alpha_pattern are kept in the file's order (PEFT tries their keys in order,
// the first match wins); a key Go cannot match as PEFT does, a rank that is not a positive
// integer or an alpha that is not a finite number is an error naming the field and the key.
func parseAdapterConfig(data []byte) (llama.LoRASpec, float64, error) {
	patterns, err := readPatterns(data)
	if err != nil {
		return llama.LoRASpec{}, 0, err
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return llama.LoRASpec{}, 0, fmt.Errorf("malformed JSON: %w", err)
	}
	switch {
	case pc.PeftType != "" && pc.PeftType != "LORA":
		return llama.LoRASpec{}, 0, fmt.Errorf("peft_type %q: only LORA is supported", pc.PeftType)
	case pc.R <= 0:
		return llama.LoRASpec{}, 0, fmt.Errorf("field r = %d, want > 0", pc.R)
	case !(pc.LoRADropout >= 0 && pc.LoRADropout < 1):
		return llama.LoRASpec{}, 0, fmt.Errorf("field lora_dropout = %g, want a probability in [0, 1)", pc.LoRADropout)
	case pc.UseDoRA:
		return llama.LoRASpec{}, 0, fmt.Errorf("use_dora: DoRA is not supported")
	case pc.Bias != "" && pc.Bias != "none":
		return llama.LoRASpec{}, 0, fmt.Errorf("bias %q: only \"none\" is supported", pc.Bias)
	case pc.FanInFanOut:
		return llama.LoRASpec{}, 0, fmt.Errorf("fan_in_fan_out: not supported for Llama linear layers")
	case !isNullJSON(pc.LayersToTransform):
		return llama.LoRASpec{}, 0, fmt.Errorf("layers_to_transform: adapters on a subset of layers are not supported")
	}
	var targets []string
	if err := json.Unmarshal(pc.TargetModules, &targets); err != nil || len(targets) == 0 {
		return llama.LoRASpec{}, 0, fmt.Errorf("target_modules: want a non-empty list of module names")
	}
	// PEFT keeps target_modules as a set: order and repeats carry no meaning.
	sort.Strings(targets)
	targets = slices.Compact(targets)
	spec := llama.LoRASpec{Targets: targets, Rank: pc.R, Alpha: pc.LoRAAlpha, RSLoRA: pc.UseRSLoRA,
		RankPattern: patterns.rank, AlphaPattern: patterns.alpha}
	if err := spec.Validate(); err != nil {
		return llama.LoRASpec{}, 0, err
	}
	return spec, pc.LoRADropout, nil
}

// peftKey splits a PEFT LoRA key into its layer, module path and matrix (A or B).
var peftKey = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(.+)\.lora_([AB])\.weight$`)

// checkNoExtraTensors fails on the first (by name) tensor of the file that is not one of the
// LoRA matrices the spec and the model imply, saying why it matches none.
func checkNoExtraTensors(ts map[string]hf.TensorInfo, want map[string]bool, spec llama.LoRASpec, cfg hf.Config, wpath string) error {
	var extra []string
	for name := range ts {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	more := ""
	if len(extra) > 1 {
		more = fmt.Sprintf(" (and %d more tensors like it)", len(extra)-1)
	}
	return fmt.Errorf("%s: tensor %s%s: %s; an adapter must hold exactly the lora_A and lora_B matrices of its target modules",
		wpath, extra[0], more, whyUnmatched(extra[0], spec, cfg))
}

func whyUnmatched(name string, spec llama.LoRASpec, cfg hf.Config) string {
	targets := strings.Join(spec.Targets, ", ")
	m := peftKey.FindStringSubmatch(name)
	if m == nil {
		return fmt.Sprintf("not a LoRA matrix of the target modules [%s] of adapter_config.json", targets)
	}
	module := ""
	for short, path := range hf.ModulePath {
		if path == m[2] {
			module = short
		}
	}
	layer, err := strconv.Atoi(m[1])
	switch {
	case module == "":
		return fmt.Sprintf("module %q is not a Llama projection module; target_modules in adapter_config.json is [%s]", m[2], targets)
	case !slices.Contains(spec.Targets, module):
		return fmt.Sprintf("module %s is not in target_modules [%s] of adapter_config.json", module, targets)
	case err != nil || layer >= cfg.NumLayers:
		return fmt.Sprintf("layer %s: the base model has %d layers (0 to %d)", m[1], cfg.NumLayers, cfg.NumLayers-1)
	}
	return fmt.Sprintf("not a LoRA matrix of the target modules [%s] of adapter_config.json", targets)
}

// WriteAdapter writes a in PEFT's layout, float32, loadable by PeftModel.from_pretrained.
func WriteAdapter(dir string, a *Adapter, cfg hf.Config, baseModel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfs.WriteBytes(filepath.Join(dir, "adapter_config.json"), adapterConfigJSON(a, baseModel)); err != nil {
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

// adapterConfigJSON is the adapter_config.json PEFT writes for a LoRA adapter. rank_pattern and
// alpha_pattern keep the spec's order (a Go map would sort them, and the order decides which
// key wins); without patterns they are {} as PEFT writes them.
func adapterConfigJSON(a *Adapter, baseModel string) []byte {
	rank, alpha := jsonObject{}, jsonObject{}
	for _, p := range a.Spec.RankPattern {
		rank = append(rank, jsonEntry{p.Key, p.Rank})
	}
	for _, p := range a.Spec.AlphaPattern {
		alpha = append(alpha, jsonEntry{p.Key, p.Alpha})
	}
	pc := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.Spec.Rank, "lora_alpha": a.Spec.Alpha,
		"lora_dropout": a.Dropout, "target_modules": a.Spec.Targets, "use_rslora": a.Spec.RSLoRA,
		"use_dora": false, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
		"base_model_name_or_path": baseModel, "layers_to_transform": nil, "init_lora_weights": true,
		"modules_to_save": nil, "revision": nil, "rank_pattern": rank, "alpha_pattern": alpha,
	}
	data, _ := json.MarshalIndent(pc, "", "  ")
	return append(data, '\n')
}

// Matches reports, as an error naming both, whether the adapter's spec differs from the LoRA
// inputs a graph was built with. Patterns count, in order: the same keys in another order can
// give a module another rank or scaling.
func (a *Adapter) Matches(graph llama.LoRASpec) error {
	s := a.Spec
	if s.Rank != graph.Rank || s.Alpha != graph.Alpha || s.RSLoRA != graph.RSLoRA || !slices.Equal(s.Targets, graph.Targets) ||
		!slices.Equal(s.RankPattern, graph.RankPattern) || !slices.Equal(s.AlphaPattern, graph.AlphaPattern) {
		return fmt.Errorf("adapter (%s) does not match the graph (%s)", describeSpec(s), describeSpec(graph))
	}
	return nil
}

// describeSpec is r, alpha, targets and, when there are any, the patterns of a spec.
func describeSpec(s llama.LoRASpec) string {
	d := fmt.Sprintf("r %d, alpha %g, targets %v", s.Rank, s.Alpha, s.Targets)
	if s.RSLoRA {
		d += ", use_rslora"
	}
	if len(s.RankPattern) > 0 {
		d += fmt.Sprintf(", rank_pattern %v", s.RankPattern)
	}
	if len(s.AlphaPattern) > 0 {
		d += fmt.Sprintf(", alpha_pattern %v", s.AlphaPattern)
	}
	return d
}

func isNullJSON(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

// ContentSHA256 identifies the adapter in dir by its files' content: the SHA-256 of
// "adapter_config.json SHA" and "adapter_model.safetensors SHA" lines.
func ContentSHA256(dir string) (string, error) {
	h := sha256.New()
	for _, n := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		s, err := hf.FileSHA256(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", n, s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
