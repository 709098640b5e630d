package hf

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// InitOptions control a random checkpoint.
type InitOptions struct {
	Seed  uint64
	DType DType   // storage dtype: BF16, F32 or F64 (F64 only for gradient-check fixtures)
	Std   float64 // standard deviation of the projection and embedding weights (HF: 0.02)
	// NormJitter perturbs the RMSNorm weights around 1 (HF initialises them to exactly 1; fixtures
	// use a jitter so that a forward pass that ignored them would be caught).
	NormJitter float64
	// ShardBytes, when positive, splits the weights into shards of about this size with a
	// model.safetensors.index.json, as save_pretrained does for large models.
	ShardBytes int64
	// ConfigOnly writes config.json and generation_config.json but no weights.
	ConfigOnly bool
}

// WriteRandom writes a randomly initialised checkpoint in the HF layout to dir. The weights are
// a deterministic function of (Seed, tensor name, shape): the same options give the same bytes.
func WriteRandom(dir string, cfg Config, opt InitOptions) error {
	if opt.Std == 0 {
		opt.Std = 0.02
	}
	if opt.DType == "" {
		opt.DType = cfg.DType
	}
	cfg.DType = opt.DType
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cj, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeGenerationConfig(dir, cfg); err != nil {
		return err
	}
	if opt.ConfigOnly {
		return nil
	}
	var tensors []WriteTensor
	for _, spec := range cfg.ExpectedWeights() {
		tensors = append(tensors, randomTensor(spec, opt))
	}
	return WriteWeights(dir, tensors, opt.ShardBytes)
}

// WriteWeights writes model.safetensors, or shards and an index when shardBytes > 0.
func WriteWeights(dir string, tensors []WriteTensor, shardBytes int64) error {
	meta := map[string]string{"format": "pt"}
	if shardBytes <= 0 {
		path := filepath.Join(dir, "model.safetensors")
		if err := WriteSafetensors(path, tensors, meta); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	var shards [][]WriteTensor
	var cur int64
	var total int64
	for _, t := range tensors {
		if len(shards) == 0 || (cur > 0 && cur+t.size() > shardBytes) {
			shards = append(shards, nil)
			cur = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		cur += t.size()
		total += t.size()
	}
	wmap := map[string]string{}
	for i, s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := WriteSafetensors(filepath.Join(dir, name), s, meta); err != nil {
			return err
		}
		for _, t := range s {
			wmap[t.Name] = name
		}
	}
	idx, _ := json.MarshalIndent(map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": wmap,
	}, "", "  ")
	return os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), append(idx, '\n'), 0o644)
}

// randomTensor draws N(0, Std) for matrices and 1 + NormJitter·N(0,1) for norm weights, from a
// generator seeded by (Seed, name), streaming in chunks so that a 1B model needs little memory.
func randomTensor(spec TensorSpec, opt InitOptions) WriteTensor {
	h := fnv.New64a()
	h.Write([]byte(spec.Name))
	seed2 := h.Sum64()
	isNorm := len(spec.Shape) == 1
	return WriteTensor{Name: spec.Name, DType: opt.DType, Shape: spec.Shape, Fill: func(w io.Writer) error {
		rng := rand.New(rand.NewPCG(opt.Seed, seed2))
		n := int64(1)
		for _, d := range spec.Shape {
			n *= d
		}
		buf := make([]float32, min(n, 1<<20))
		for done := int64(0); done < n; {
			k := min(int64(len(buf)), n-done)
			for i := range buf[:k] {
				if isNorm {
					buf[i] = float32(1 + opt.NormJitter*rng.NormFloat64())
				} else {
					buf[i] = float32(opt.Std * rng.NormFloat64())
				}
			}
			if err := EncodeFloat32(w, opt.DType, buf[:k]); err != nil {
				return err
			}
			done += k
		}
		return nil
	}}
}

func writeGenerationConfig(dir string, cfg Config) error {
	g := map[string]any{"_from_model_config": true}
	if cfg.BOSTokenID >= 0 {
		g["bos_token_id"] = cfg.BOSTokenID
	}
	if len(cfg.EOSTokenIDs) == 1 {
		g["eos_token_id"] = cfg.EOSTokenIDs[0]
	} else if len(cfg.EOSTokenIDs) > 1 {
		g["eos_token_id"] = cfg.EOSTokenIDs
	}
	// Llama-3.2's own generation_config.json enables sampling; bear's evaluation never reads it.
	g["do_sample"] = true
	g["temperature"] = 0.6
	g["top_p"] = 0.9
	data, _ := json.MarshalIndent(g, "", "  ")
	return os.WriteFile(filepath.Join(dir, "generation_config.json"), append(data, '\n'), 0o644)
}
