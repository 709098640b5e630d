package main

import (
	"flag"
	"fmt"
	"github.com/bearrec/bear/onnx/traingraph"
	"io"
	"os"
	"strings"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
)

func init() {
	register(&command{name: "export", summary: "write training artifacts: forward.onnx, backward.onnx, manifest.json", run: func(args []string) error {
		return exportMain(args, os.Stderr)
	}, options: ortOptions})
}

// trainFlags are the flags that define a training setup.
type trainFlags struct {
	fs                                    *flag.FlagSet
	targets, policy, train, logits, dtype *string
	rank                                  *int
	alpha                                 *float64
}

func addTrainFlags(fs *flag.FlagSet) trainFlags {
	return trainFlags{
		fs:      fs,
		targets: fs.String("lora-targets", "q_proj,v_proj", "LoRA target modules (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)"),
		rank:    fs.Int("lora-r", 8, "LoRA rank"),
		alpha:   fs.Float64("lora-alpha", 16, "LoRA alpha (scaling alpha/r)"),
		policy:  fs.String("policy", "stash", "residual policy: stash (forward outputs what backward needs) or recompute"),
		train:   fs.String("train", "lora", "what to train: lora, or full (every weight)"),
		logits:  fs.String("logits", "full", "logits the forward graph returns: full (vocabulary) or candidates"),
		dtype:   fs.String("dtype", "fp32", "compute dtype: fp32, or fp64 for gradient checks"),
	}
}

func (f trainFlags) options(base ortrun.ModelOptions) (ortrun.TrainOptions, error) {
	o := ortrun.TrainOptions{Model: base}
	var err error
	if o.Policy, err = autodiff.ParsePolicy(*f.policy); err != nil {
		return o, fmt.Errorf("--policy: %w", err)
	}
	switch *f.train {
	case "lora":
	case "full":
		o.Full = true
	default:
		return o, fmt.Errorf("--train %q: want lora or full", *f.train)
	}
	switch *f.logits {
	case "full":
	case "candidates":
		o.Model.Logits = llama.LogitsCandidates
	default:
		return o, fmt.Errorf("--logits %q: want full or candidates", *f.logits)
	}
	switch *f.dtype {
	case "fp32":
		o.Model.DType = hf.F32
	case "fp64":
		o.Model.DType = hf.F64
	default:
		return o, fmt.Errorf("--dtype %q: want fp32 or fp64", *f.dtype)
	}
	// Full training adds LoRA matrices only when targets are named explicitly.
	if !o.Full || isFlagSet(f.fs, "lora-targets") {
		if err := checkLoRAFlags(*f.rank, *f.alpha); err != nil {
			return o, err
		}
		spec := &llama.LoRASpec{Rank: *f.rank, Alpha: *f.alpha}
		for _, t := range strings.Split(*f.targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				spec.Targets = append(spec.Targets, t)
			}
		}
		if err := spec.Validate(); err != nil {
			return o, fmt.Errorf("--lora-targets %q: %w", *f.targets, err)
		}
		o.Model.LoRA = spec
	}
	return o, nil
}

func exportMain(args []string, log io.Writer) error {
	fs := newFlagSet("export", "--model DIR --out DIR [flags]")
	model := fs.String("model", "", "checkpoint folder (required)")
	out := fs.String("out", "", "artifact folder to write (required)")
	tf := addTrainFlags(fs)
	cache := fs.String("cache-dir", "", "folder for weights converted to the compute dtype (default: the user cache folder)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	o, err := tf.options(ortrun.ModelOptions{CacheDir: *cache, Weights: ortrun.WeightsConverted})
	if err != nil {
		return err
	}
	ck, err := hf.Open(*model)
	if err != nil {
		return err
	}
	tg, err := ortrun.BuildTrainGraphs(ck, o)
	if err != nil {
		return err
	}
	if err := traingraph.WriteArtifacts(*out, tg); err != nil {
		return err
	}
	fmt.Fprintf(log, "bear export: wrote %s (forward %d KiB, backward %d KiB, %d residuals, policy %s)\n",
		*out, len(tg.Forward)>>10, len(tg.Backward)>>10, len(tg.Manifest.Residuals), tg.Manifest.Policy)
	return nil
}

// checkLoRAFlags refuses a LoRA rank below 1 and an alpha that is not a finite positive number
// (the adapter's scaling is alpha/r).
func checkLoRAFlags(rank int, alpha float64) error {
	if err := checkPositive("lora-r", rank); err != nil {
		return err
	}
	if err := checkFinite("lora-alpha", alpha); err != nil || alpha <= 0 {
		return fmt.Errorf("--lora-alpha %v: want a finite positive number (the scaling is alpha/r)", alpha)
	}
	return nil
}
