package ortrun

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/llama"
)

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

func (s IOSpec) dtype() builder.DType { return builder.DType(onnxDTypes[s.DType]) }

var onnxDTypes = map[string]int32{"FLOAT": 1, "DOUBLE": 11, "INT64": 7, "BOOL": 9}

func (s IOSpec) eval(syms map[string]int64) ([]int64, error) {
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

func names(specs []IOSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// TrainMode says what a pair of training graphs differentiates.
type TrainMode string

const (
	TrainLoRA TrainMode = "lora" // the LoRA matrices only; base weights stay inside ONNX Runtime
	TrainFull TrainMode = "full" // every base weight (held in Go), and the LoRA matrices if any
)

// Manifest describes a pair of training graphs: where they came from and how to feed them.
type Manifest struct {
	Format           string                `json:"format"`
	Checkpoint       string                `json:"checkpoint"`
	CheckpointSHA256 map[string]string     `json:"checkpoint_sha256,omitempty"`
	DType            string                `json:"dtype"`
	Policy           string                `json:"policy"`
	Train            TrainMode             `json:"train"`
	Logits           llama.LogitsMode      `json:"logits"`
	LoRA             *llama.LoRASpec       `json:"lora,omitempty"`
	LoRAInputs       []llama.LoRAInputInfo `json:"lora_inputs,omitempty"`
	LoRADropout      float64               `json:"lora_dropout,omitempty"`
	Trainable        []string              `json:"trainable"`
	ExternalDataDir  string                `json:"external_data_dir"` // folder of the weights' external data
	ForwardInputs    []IOSpec              `json:"forward_inputs"`
	ForwardOutputs   []IOSpec              `json:"forward_outputs"` // logits, then residuals (stash)
	Residuals        []string              `json:"residuals"`
	BackwardInputs   []IOSpec              `json:"backward_inputs"`
	BackwardOutputs  []IOSpec              `json:"backward_outputs"`
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
func WriteArtifacts(dir string, tg *TrainGraphs) error {
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
		sum, err := FileSHA256(f)
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

// FileSHA256 is the hex sha256 of a file's contents.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReadArtifacts reads an artifact folder written by WriteArtifacts.
func ReadArtifacts(dir string) (*TrainGraphs, error) {
	mp := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(mp)
	if err != nil {
		return nil, fmt.Errorf("read artifacts: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %w", mp, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", mp, m.Format, ManifestFormat)
	}
	tg := &TrainGraphs{Manifest: &m}
	for name, dst := range map[string]*[]byte{ForwardFile: &tg.Forward, BackwardFile: &tg.Backward} {
		if *dst, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("read artifacts: %w", err)
		}
	}
	return tg, nil
}

// LoadTrainer creates a Trainer from an artifact folder.
func LoadTrainer[T ComputeFloat](dir string, so SessionOptions) (*Trainer[T], error) {
	tg, err := ReadArtifacts(dir)
	if err != nil {
		return nil, err
	}
	t, err := newTrainer[T](tg, so)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}
