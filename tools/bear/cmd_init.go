package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/hf"
)

func init() {
	register(&command{name: "init", summary: "write a randomly initialised Llama-3.2 checkpoint (HF layout)", run: initMain})
}

func initMain(args []string) error {
	fs := newFlagSet("init", "--preset NAME|--config FILE --out DIR [flags]")
	preset := fs.String("preset", "", "model shape: tiny, small, llama-3.2-1b, llama-3.2-3b")
	configPath := fs.String("config", "", "a config.json to use instead of a preset")
	out := fs.String("out", "", "output folder (required; must not exist or be empty, unless --force)")
	seed := fs.Uint64("seed", 42, "random seed: the same seed gives the same bytes")
	dtype := fs.String("dtype", "", "storage dtype: bf16 or fp32 (default: the preset's, bf16)")
	weights := fs.Bool("weights", false, "also write weights for the large presets (llama-3.2-1b/3b write only config.json by default)")
	std := fs.Float64("std", 0.02, "standard deviation of the random weights (transformers' initializer_range)")
	normJitter := fs.Float64("norm-jitter", 0, "perturb RMSNorm weights around 1 by this standard deviation (fixtures)")
	shard := fs.Int64("shard-bytes", 0, "split weights into shards of about this many bytes, with model.safetensors.index.json")
	force := fs.Bool("force", false, "replace a non-empty --out folder whole")
	tokenizer := fs.String("tokenizer", "", "tokenizer.json to copy (default for Llama-3 vocabularies: $BEAR_TOKENIZER, then the one make deps fetched; \"\" copies none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: bear init takes flags only (-h lists them)", fs.Args())
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if err := checkInitNumbers(*std, *normJitter, *shard); err != nil {
		return err
	}
	if (*preset == "") == (*configPath == "") {
		return fmt.Errorf("give exactly one of --preset and --config")
	}
	var cfg hf.Config
	withWeights := true
	if *preset != "" {
		p, err := hf.LookupPreset(*preset)
		if err != nil {
			return err
		}
		cfg, withWeights = p.Config, p.WeightsDefault || *weights
	} else {
		var err error
		if cfg, err = readConfigFile(*configPath); err != nil {
			return err
		}
	}
	opt := hf.InitOptions{Seed: *seed, Std: *std, NormJitter: *normJitter, ShardBytes: *shard, ConfigOnly: !withWeights}
	switch *dtype {
	case "":
	case "bf16":
		opt.DType = hf.BF16
	case "fp32":
		opt.DType = hf.F32
	default:
		return fmt.Errorf("--dtype %q: want bf16 or fp32", *dtype)
	}
	tokPath, err := initTokenizer(*tokenizer, isFlagSet(fs, "tokenizer"), cfg.VocabSize)
	if err != nil {
		return err
	}
	copyTok := tokPath != ""
	if err := checkOutDir(*out, *force, nonEmpty(*configPath, tokPath)...); err != nil {
		return err
	}
	err = writeOutDir(*out, *force, func(tmp string) error {
		if err := hf.WriteRandom(tmp, cfg, opt); err != nil || !copyTok {
			return err
		}
		return writeTokenizerFiles(tmp, tokPath, cfg)
	})
	if err != nil {
		return err
	}
	what := "config and weights"
	if !withWeights {
		what = "config only (pass --weights for weights)"
	}
	fmt.Fprintf(os.Stderr, "bear init: wrote %s to %s\n", what, *out)
	return nil
}

// checkInitNumbers refuses standard deviations that are not finite and positive (a zero --std
// would silently become the default) and a negative shard size.
func checkInitNumbers(std, normJitter float64, shard int64) error {
	if !(std > 0) || math.IsInf(std, 0) {
		return fmt.Errorf("--std %v: want a finite standard deviation > 0", std)
	}
	if !(normJitter >= 0) || math.IsInf(normJitter, 0) {
		return fmt.Errorf("--norm-jitter %v: want a finite standard deviation ≥ 0", normJitter)
	}
	if shard < 0 {
		return fmt.Errorf("--shard-bytes %d: want a size in bytes, or 0 for a single model.safetensors", shard)
	}
	return nil
}

// nonEmpty drops the empty strings of paths.
func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func readConfigFile(path string) (hf.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return hf.Config{}, err
	}
	cfg, err := hf.ParseConfig(data)
	if err != nil {
		return hf.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// writeTokenizerFiles copies tokenizer.json and writes the tokenizer_config.json and
// special_tokens_map.json that transformers' AutoTokenizer expects beside it.
func writeTokenizerFiles(dir, tokenizer string, cfg hf.Config) error {
	data, err := os.ReadFile(tokenizer)
	if err != nil {
		return fmt.Errorf("copy tokenizer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		return err
	}
	special := map[string]any{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
	tc := map[string]any{
		"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "clean_up_tokenization_spaces": true,
		"model_input_names": []string{"input_ids", "attention_mask"}, "model_max_length": cfg.MaxPositions,
		"tokenizer_class": "PreTrainedTokenizerFast",
	}
	for name, v := range map[string]any{"special_tokens_map.json": special, "tokenizer_config.json": tc} {
		js, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, name), append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
