package traingraph

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"google.golang.org/protobuf/proto"
)

// Graphs are the serialized forward and backward graphs of one training setup and the manifest
// that says how to run them.
type Graphs struct {
	Forward, Backward []byte
	Manifest          *Manifest
}

// Options configure Build.
type Options struct {
	DType  hf.DType // compute dtype: F32 (default) or F64
	LoRA   *llama.LoRASpec
	Logits llama.LogitsMode
	Policy autodiff.Policy
	// Full trains every base weight (they become graph inputs); with LoRA set as well, the
	// LoRA matrices are trained too.
	Full bool
	// LoRADropout is PEFT's lora_dropout: the forward graph then takes a dropout seed per run.
	LoRADropout float64
	// FrozenInputs makes the frozen base weights graph inputs in their stored dtype
	// (llama.Options.StoredWeightInputs), or in FrozenDType when set, instead of initializers
	// bound by b; b is then nil.
	FrozenInputs bool
	FrozenDType  hf.DType
}

// Build exports the forward graph of ck and differentiates it with respect to the LoRA
// matrices (and every weight with Full). b binds the frozen weights to their data (nil with
// Full: the weights are inputs).
func Build(ck *hf.Checkpoint, b *llama.WeightBinding, o Options) (*Graphs, error) {
	if o.DType == "" {
		o.DType = hf.F32
	}
	if o.LoRA == nil && !o.Full {
		return nil, fmt.Errorf("nothing to train: give a LoRA spec or train the full model")
	}
	if o.Full && o.FrozenInputs {
		return nil, fmt.Errorf("full training trains the base weights: they cannot be frozen inputs")
	}
	bt, err := llama.BuildForward(ck, b, llama.Options{DType: o.DType, LoRA: o.LoRA, Logits: o.Logits,
		WeightsAsInputs: o.Full, StoredWeightInputs: o.FrozenInputs, FrozenDType: o.FrozenDType, LoRADropout: o.LoRADropout})
	if err != nil {
		return nil, err
	}
	var wrt []string
	for _, in := range bt.LoRAInputs {
		wrt = append(wrt, in.Name)
	}
	if o.Full {
		for _, spec := range ck.Config.ExpectedWeights() {
			wrt = append(wrt, spec.Name)
		}
	}
	res, err := autodiff.Differentiate(bt.Graph, llama.Logits, wrt, o.Policy)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Dir, err)
	}
	fwd, err := proto.Marshal(bt.Graph.Model("bear"))
	if err != nil {
		return nil, err
	}
	bwd, err := proto.Marshal(res.Backward.Model("bear"))
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(ck.Dir)
	m := &Manifest{
		Format: ManifestFormat, Checkpoint: abs, DType: string(o.DType), Policy: o.Policy.String(),
		Train: LoRA, Logits: o.Logits, LoRA: o.LoRA, LoRADropout: o.LoRADropout, LoRAInputs: bt.LoRAInputs, Trainable: wrt,
	}
	if o.FrozenInputs {
		m.FrozenDType = o.FrozenDType
	}
	if o.Full {
		m.Train = Full
	}
	if b != nil {
		m.ExternalDataDir = b.Dir
	} else {
		m.ExternalDataDir = abs
	}
	for _, name := range bt.Inputs {
		v, _ := bt.Graph.Lookup(name)
		m.ForwardInputs = append(m.ForwardInputs, ioSpec(v))
		if _, ok := ck.Weights[name]; ok && o.FrozenInputs {
			m.FrozenInputs = append(m.FrozenInputs, name)
		}
	}
	lv, _ := bt.Graph.Lookup(llama.Logits)
	m.ForwardOutputs = []IOSpec{ioSpec(lv)}
	for _, r := range res.Residuals {
		m.ForwardOutputs = append(m.ForwardOutputs, ioSpec(r))
		m.Residuals = append(m.Residuals, r.Name)
	}
	for _, v := range res.Inputs {
		m.BackwardInputs = append(m.BackwardInputs, ioSpec(v))
	}
	for _, v := range res.Grads {
		m.BackwardOutputs = append(m.BackwardOutputs, ioSpec(v))
	}
	return &Graphs{Forward: fwd, Backward: bwd, Manifest: m}, nil
}

// ManifestFormat names the layout of an artifact folder.
const ManifestFormat = "bear-train-artifacts/1"

// IOSpec is one graph input or output: name, element type and shape, with symbolic axes
// (batch, seq, n, c and their products) spelled as ONNX dim_params.
type IOSpec struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []string `json:"shape"`
}

func ioSpec(v builder.Value) IOSpec {
	s := IOSpec{Name: v.Name, DType: v.DType.String()}
	for _, d := range v.Shape {
		s.Shape = append(s.Shape, d.String())
	}
	return s
}

// ElemType is the spec's element type.
func (s IOSpec) ElemType() builder.DType { return builder.DType(onnxDTypes[s.DType]) }

var onnxDTypes = map[string]int32{"FLOAT": 1, "DOUBLE": 11, "INT64": 7, "BOOL": 9, "FLOAT16": 10, "BFLOAT16": 16}

// Eval is the spec's shape with its symbolic axes given by syms.
func (s IOSpec) Eval(syms map[string]int64) ([]int64, error) {
	shape := make(builder.Shape, len(s.Shape))
	for i, d := range s.Shape {
		shape[i] = builder.ParseDim(d)
	}
	out, err := shape.Eval(syms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	return out, nil
}

// Names lists the specs' names.
func Names(specs []IOSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// Mode says what a pair of training graphs differentiates.
type Mode string

const (
	LoRA Mode = "lora" // the LoRA matrices only; the base weights are frozen
	Full Mode = "full" // every base weight (held in Go), and the LoRA matrices if any
)

// Manifest describes a pair of training graphs: where they came from and how to feed them.
type Manifest struct {
	Format           string                `json:"format"`
	Checkpoint       string                `json:"checkpoint"`
	CheckpointSHA256 map[string]string     `json:"checkpoint_sha256,omitempty"`
	DType            string                `json:"dtype"`
	Policy           string                `json:"policy"`
	Train            Mode                  `json:"train"`
	Logits           llama.LogitsMode      `json:"logits"`
	LoRA             *llama.LoRASpec       `json:"lora,omitempty"`
	LoRAInputs       []llama.LoRAInputInfo `json:"lora_inputs,omitempty"`
	LoRADropout      float64               `json:"lora_dropout,omitempty"`
	Trainable        []string              `json:"trainable"`
	// FrozenInputs are the base weights the graphs take as inputs in their stored dtype: the
	// checkpoint's tensors of those names, bound as they are and never changed.
	FrozenInputs []string `json:"frozen_inputs,omitempty"`
	// FrozenDType is the dtype of the frozen inputs when it is not the checkpoint's (float32
	// copies widened in memory).
	FrozenDType     hf.DType `json:"frozen_dtype,omitempty"`
	ExternalDataDir string   `json:"external_data_dir"` // folder of the weights' external data
	ForwardInputs   []IOSpec `json:"forward_inputs"`
	ForwardOutputs  []IOSpec `json:"forward_outputs"` // logits, then residuals (stash)
	Residuals       []string `json:"residuals"`
	BackwardInputs  []IOSpec `json:"backward_inputs"`
	BackwardOutputs []IOSpec `json:"backward_outputs"`
}

// Artifact file names inside an artifact folder.
const (
	ForwardFile  = "forward.onnx"
	BackwardFile = "backward.onnx"
	ManifestFile = "manifest.json"
)

// WriteArtifacts writes forward.onnx, backward.onnx and manifest.json to dir, with the sha256
// of every checkpoint weight file in the manifest. The graphs' weights stay external data where
// they are (in place in the checkpoint, or its float32 conversion): the manifest's
// external_data_dir says which folder, so artifacts stay small.
func WriteArtifacts(dir string, tg *Graphs) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m := *tg.Manifest
	m.CheckpointSHA256 = map[string]string{}
	files, err := filepath.Glob(filepath.Join(m.Checkpoint, "*.safetensors"))
	if err != nil {
		return err
	}
	for _, f := range files {
		sum, err := hf.FileSHA256(f)
		if err != nil {
			return err
		}
		m.CheckpointSHA256[filepath.Base(f)] = sum
	}
	for name, data := range map[string][]byte{ForwardFile: tg.Forward, BackwardFile: tg.Backward} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	js, _ := json.MarshalIndent(m, "", "  ")
	return os.WriteFile(filepath.Join(dir, ManifestFile), append(js, '\n'), 0o644)
}
