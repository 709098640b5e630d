package main

import (
	"fmt"
	"os"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
)

func init() {
	register(&command{name: "merge", summary: "write a checkpoint with a LoRA adapter merged into its weights", run: runMerge})
}

func runMerge(args []string) error {
	fs := newFlagSet("merge", "--model DIR --adapter DIR --out DIR [--dtype bf16|fp32]")
	model := fs.String("model", "", "base checkpoint folder (required)")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder (required)")
	out := fs.String("out", "", "folder for the merged checkpoint (required)")
	dtype := fs.String("dtype", "", "storage dtype of the merged weights: bf16 or fp32 (default: the base checkpoint's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *adapter == "" || *out == "" {
		return fmt.Errorf("--model, --adapter and --out are required")
	}
	var dt hf.DType
	switch *dtype {
	case "":
	case "bf16":
		dt = hf.BF16
	case "fp32":
		dt = hf.F32
	default:
		return fmt.Errorf("--dtype %q: want bf16 or fp32", *dtype)
	}
	cfg, err := hf.ReadConfig(*model)
	if err != nil {
		return err
	}
	a, err := peft.ReadAdapter(*adapter, cfg)
	if err != nil {
		return err
	}
	if err := peft.MergeAdapter(*model, *out, a, dt); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bear merge: wrote %s\n", *out)
	return nil
}
