package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
)

func init() {
	register(&command{name: "merge", summary: "write a checkpoint with a LoRA adapter merged into its weights", run: mergeMain})
}

type mergeFlags struct {
	model, adapter, out, dtype *string
	force                      *bool
}

func mergeMain(args []string) error {
	fs := newFlagSet("merge", "--model DIR --adapter DIR --out DIR [--dtype bf16|fp32] [--force]")
	f := mergeFlags{
		model:   fs.String("model", "", "base checkpoint folder (required)"),
		adapter: fs.String("adapter", "", "PEFT LoRA adapter folder (required)"),
		out:     fs.String("out", "", "folder for the merged checkpoint (required; must not exist or be empty, unless --force)"),
		dtype:   fs.String("dtype", "", "storage dtype of the merged weights: bf16 or fp32 (default: the base checkpoint's)"),
		force:   fs.Bool("force", false, "replace a non-empty --out folder whole"),
	}
	dt, err := f.parse(fs, args)
	if err != nil {
		return err
	}
	cfg, err := hf.ReadConfig(*f.model)
	if err != nil {
		return err
	}
	a, err := peft.ReadAdapter(*f.adapter, cfg)
	if err != nil {
		return err
	}
	err = writeOutDir(*f.out, *f.force, func(tmp string) error { return peft.MergeAdapter(*f.model, tmp, a, dt) })
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bear merge: wrote %s\n", *f.out)
	return nil
}

// parse parses and checks every flag before any work, returning the storage dtype.
func (f mergeFlags) parse(fs *flag.FlagSet, args []string) (hf.DType, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q: bear merge takes flags only (-h lists them)", fs.Args())
	}
	if *f.model == "" || *f.adapter == "" || *f.out == "" {
		return "", fmt.Errorf("--model, --adapter and --out are required")
	}
	dt, err := storageDType(*f.dtype)
	if err != nil {
		return "", err
	}
	return dt, checkOutDir(*f.out, *f.force, *f.model, *f.adapter)
}

// storageDType maps --dtype to a checkpoint storage dtype ("" keeps the default).
func storageDType(flag string) (hf.DType, error) {
	switch flag {
	case "":
		return "", nil
	case "bf16":
		return hf.BF16, nil
	case "fp32":
		return hf.F32, nil
	}
	return "", fmt.Errorf("--dtype %q: want bf16 or fp32", flag)
}
