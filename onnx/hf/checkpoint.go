package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// Checkpoint is an opened Hugging Face Llama checkpoint: its configuration and the location of
// every weight the configuration implies. No weight data is read until asked for.
type Checkpoint struct {
	Dir     string
	Config  Config
	Weights map[string]TensorInfo // by HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
	Files   []string              // the safetensors files, in order
}

// Weight names of the HF Llama layout.
const (
	EmbedName     = "model.embed_tokens.weight"
	FinalNormName = "model.norm.weight"
	lMHeadName    = "lm_head.weight"
)

// LayerWeight is the HF name of a per-layer weight, e.g. LayerWeight(0, "self_attn.q_proj").
func LayerWeight(layer int, module string) string {
	return fmt.Sprintf("model.layers.%d.%s.weight", layer, module)
}

// ModulePath maps a LoRA target module name to its path inside a layer.
var ModulePath = map[string]string{
	"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
	"o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
	"down_proj": "mlp.down_proj",
}

// ModuleShape is the [out, in] shape of a projection module.
func (c Config) ModuleShape(module string) (out, in int) {
	switch module {
	case "q_proj":
		return c.QDim(), c.HiddenSize
	case "k_proj", "v_proj":
		return c.KVDim(), c.HiddenSize
	case "o_proj":
		return c.HiddenSize, c.QDim()
	case "gate_proj", "up_proj":
		return c.IntermediateSize, c.HiddenSize
	case "down_proj":
		return c.HiddenSize, c.IntermediateSize
	}
	panic("hf: unknown module " + module)
}

// Modules lists the projection modules of a layer, in the order HF declares them.
var Modules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// ExpectedWeights lists every weight of the configuration with its shape, in a fixed order.
func (c Config) ExpectedWeights() []TensorSpec {
	h := int64(c.HiddenSize)
	ws := []TensorSpec{{EmbedName, []int64{int64(c.VocabSize), h}}}
	for l := 0; l < c.NumLayers; l++ {
		ws = append(ws, TensorSpec{LayerWeight(l, "input_layernorm"), []int64{h}})
		for _, m := range Modules {
			o, i := c.ModuleShape(m)
			ws = append(ws, TensorSpec{LayerWeight(l, ModulePath[m]), []int64{int64(o), int64(i)}})
		}
		ws = append(ws, TensorSpec{LayerWeight(l, "post_attention_layernorm"), []int64{h}})
	}
	ws = append(ws, TensorSpec{FinalNormName, []int64{h}})
	if !c.TieWordEmbeddings {
		ws = append(ws, TensorSpec{lMHeadName, []int64{int64(c.VocabSize), h}})
	}
	return ws
}

// TensorSpec is a weight's name and shape.
type TensorSpec struct {
	Name  string
	Shape []int64
}

// Open reads dir/config.json and the safetensors headers (model.safetensors, or else the shards
// named by model.safetensors.index.json), and checks that every expected weight is present, floating
// point, and of the configured shape.
func Open(dir string) (*Checkpoint, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	return OpenWith(dir, cfg)
}

// OpenWith is Open with dir's configuration already read (ReadConfig): a command that checks
// its flags against the configuration before touching the weights reads config.json once.
func OpenWith(dir string, cfg Config) (*Checkpoint, error) {
	var err error
	ck := &Checkpoint{Dir: dir, Config: cfg, Weights: map[string]TensorInfo{}}
	all := map[string]TensorInfo{}
	index := filepath.Join(dir, "model.safetensors.index.json")
	single := filepath.Join(dir, "model.safetensors")
	// A folder holding both a single file and an index is read from the single file, as
	// transformers does: PreTrainedModel.from_pretrained (modeling_utils.py,
	// _get_resolved_checkpoint_files) tests for SAFE_WEIGHTS_NAME before SAFE_WEIGHTS_INDEX_NAME.
	switch {
	case exists(single):
		ts, _, err := ReadSafetensorsHeader(single)
		if err != nil {
			return nil, err
		}
		all = ts
		ck.Files = []string{single}
	case exists(index):
		if all, ck.Files, err = readShards(dir, index); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", dir)
	}
	for _, spec := range cfg.ExpectedWeights() {
		t, ok := all[spec.Name]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is missing", ck.describeFiles(), spec.Name)
		}
		if !t.DType.IsFloat() {
			return nil, fmt.Errorf("%s: tensor %s: dtype %s, want a floating-point dtype", t.File, spec.Name, t.DType)
		}
		if !slices.Equal(t.Shape, spec.Shape) {
			return nil, fmt.Errorf("%s: tensor %s: shape %v, config.json implies %v", t.File, spec.Name, t.Shape, spec.Shape)
		}
		ck.Weights[spec.Name] = t
	}
	return ck, nil
}

// readShards reads the headers of the shards index names and keeps, of each shard, the tensors
// the index assigns to it.
func readShards(dir, index string) (map[string]TensorInfo, []string, error) {
	files, wmap, err := readIndex(index)
	if err != nil {
		return nil, nil, err
	}
	all := map[string]TensorInfo{}
	var paths []string
	for _, f := range files {
		path := filepath.Join(dir, f)
		ts, _, err := ReadSafetensorsHeader(path)
		if err != nil {
			return nil, nil, err
		}
		for name, t := range ts {
			if wmap[name] == f {
				all[name] = t
			}
		}
		paths = append(paths, path)
	}
	for name, f := range wmap {
		if _, ok := all[name]; !ok {
			return nil, nil, fmt.Errorf("%s: tensor %s is listed in %s but missing from it", filepath.Join(dir, f), name, index)
		}
	}
	return all, paths, nil
}

func (ck *Checkpoint) describeFiles() string {
	if len(ck.Files) == 1 {
		return ck.Files[0]
	}
	return filepath.Join(ck.Dir, "model.safetensors.index.json")
}

// LMHead is the weight of the output projection: the embedding when the embeddings are tied.
func (ck *Checkpoint) LMHead() TensorInfo {
	if ck.Config.TieWordEmbeddings {
		return ck.Weights[EmbedName]
	}
	return ck.Weights[lMHeadName]
}

// StorageDType is the dtype the weights are stored in, or "" when they are mixed.
func (ck *Checkpoint) StorageDType() DType {
	var d DType
	for _, t := range ck.Weights {
		if d == "" {
			d = t.DType
		} else if d != t.DType {
			return ""
		}
	}
	return d
}

func readIndex(path string) ([]string, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("%s: malformed JSON: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: field weight_map is missing or empty", path)
	}
	seen := map[string]bool{}
	var files []string
	for _, f := range idx.WeightMap {
		if filepath.IsAbs(f) || f != filepath.Base(f) {
			return nil, nil, fmt.Errorf("%s: weight_map names %q, want a file name in the same folder", path, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return files, idx.WeightMap, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// auxFiles are the files of a checkpoint folder besides config.json and the weights that a
// derived checkpoint (merged, fully trained) keeps: the tokenizer and the generation settings.
var auxFiles = []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}

// CopyAuxFiles copies those of auxFiles that src holds into dst.
func CopyAuxFiles(src, dst string) error {
	for _, f := range auxFiles {
		data, err := os.ReadFile(filepath.Join(src, f))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
