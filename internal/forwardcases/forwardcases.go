package forwardcases

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/hf"
)

// Case is one entry of cases.json joined with its reference results.
type Case struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
	Init   struct {
		Seed       uint64  `json:"seed"`
		Std        float64 `json:"std"`
		NormJitter float64 `json:"norm_jitter"`
		DType      string  `json:"dtype"` // fp32 or bf16, as `bear init --dtype`
	} `json:"init"`
	Sequences      [][]int64 `json:"sequences"`
	PositionOffset int64     `json:"position_offset"`
	LoRA           *struct {
		Dir string `json:"dir"` // adapter folder, relative to testdata/forward
	} `json:"lora"`

	// From golden.json.gz.
	SHA256    string                 `json:"-"` // of the model.safetensors the reference read
	Logits    [][]float64            `json:"-"` // one row per real token, sequence by sequence
	Cotangent [][]float64            `json:"-"` // LoRA cases: the cotangent of those logits
	LoRAGrads map[string][][]float64 `json:"-"` // LoRA cases: gradients under PEFT names
}

type result struct {
	Name      string                 `json:"name"`
	SHA256    string                 `json:"checkpoint_sha256"`
	Logits    [][]float64            `json:"logits"`
	Cotangent [][]float64            `json:"cotangent"`
	LoRAGrads map[string][][]float64 `json:"lora_grads"`
}

// Load reads the cases of dir (testdata/forward) with their golden results.
func Load(dir string) ([]Case, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		return nil, err
	}
	var spec struct{ Cases []Case }
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s/cases.json: %w", dir, err)
	}
	f, err := os.Open(filepath.Join(dir, "golden.json.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var gold struct{ Cases []result }
	if err := json.NewDecoder(io.Reader(gz)).Decode(&gold); err != nil {
		return nil, fmt.Errorf("%s/golden.json.gz: %w", dir, err)
	}
	byName := map[string]result{}
	for _, g := range gold.Cases {
		byName[g.Name] = g
	}
	for i, c := range spec.Cases {
		g, ok := byName[c.Name]
		if !ok {
			return nil, fmt.Errorf("%s/golden.json.gz has no results for case %s: run make goldens", dir, c.Name)
		}
		spec.Cases[i].SHA256, spec.Cases[i].Logits, spec.Cases[i].Cotangent, spec.Cases[i].LoRAGrads = g.SHA256, g.Logits, g.Cotangent, g.LoRAGrads
	}
	return spec.Cases, nil
}

// Find returns the case called name.
func Find(cases []Case, name string) (Case, error) {
	for _, c := range cases {
		if c.Name == name {
			return c, nil
		}
	}
	return Case{}, fmt.Errorf("no forward case %s", name)
}

// InitDType is the case's storage dtype.
func (c Case) InitDType() hf.DType {
	if c.Init.DType == "bf16" {
		return hf.BF16
	}
	return hf.F32
}

// WriteCheckpoint writes the case's checkpoint into dir exactly as `bear init --config` did
// for the reference, stored as dtype (the case's own when empty).
func (c Case) WriteCheckpoint(dir string, dtype hf.DType) error {
	cfg, err := hf.ParseConfig(c.Config)
	if err != nil {
		return err
	}
	if dtype == "" {
		dtype = c.InitDType()
	}
	return hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: c.Init.Seed, Std: c.Init.Std, NormJitter: c.Init.NormJitter, DType: dtype})
}
