package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/ortrun"
)

func init() {
	register(&command{name: "grad", summary: "LoRA gradients of <logits, cotangent> for one sequence, as JSON under PEFT names", run: func(args []string) error {
		return gradMain(args, os.Stdout)
	}, options: ortOptions})
}

// gradMain prints the LoRA gradients of the scalar <logits, cotangent> for one sequence.
func gradMain(args []string, stdout io.Writer) error {
	fs := newFlagSet("grad", "--model DIR --adapter DIR --ids 1,2,3 --cotangent FILE.json [flags]")
	model := fs.String("model", "", "checkpoint folder (required)")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder (required): its config fixes targets, r and alpha")
	idsFlag := fs.String("ids", "", "comma-separated token ids of one sequence (required)")
	cotPath := fs.String("cotangent", "", `JSON file {"cotangent":[[...vocab...],...]}, one row per position (required)`)
	policy := fs.String("policy", "stash", "residual policy: stash or recompute")
	dtype := fs.String("dtype", "fp32", "compute dtype: fp32 or fp64")
	of := addORTFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *adapter == "" || *idsFlag == "" || *cotPath == "" {
		return fmt.Errorf("--model, --adapter, --ids and --cotangent are required")
	}
	if *dtype != "fp32" && *dtype != "fp64" {
		return fmt.Errorf("--dtype %q: want fp32 or fp64", *dtype)
	}
	if err := of.check(); err != nil {
		return err
	}
	pol, err := autodiff.ParsePolicy(*policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	ids, err := forwardIDs(*model, *idsFlag, "", "")
	if err != nil {
		return err
	}
	cfg, err := modelConfigFor(*model, ids)
	if err != nil {
		return err
	}
	ad, err := peft.ReadAdapter(*adapter, cfg)
	if err != nil {
		return err
	}
	cot, err := readCotangent(*cotPath, len(ids), cfg.VocabSize)
	if err != nil {
		return err
	}
	mo, err := of.modelOptions()
	if err != nil {
		return err
	}
	mo.LoRA = &ad.Spec
	o := ortrun.TrainOptions{Model: mo, Policy: pol}
	ck, err := hf.OpenWith(*model, cfg)
	if err != nil {
		return err
	}
	switch *dtype {
	case "fp32":
		return runGrad[float32](ck, o, ad, ids, cot, stdout)
	case "fp64":
		return runGrad[float64](ck, o, ad, ids, cot, stdout)
	}
	return fmt.Errorf("--dtype %q: want fp32 or fp64", *dtype)
}

func readCotangent(path string, rows, vocab int) ([]float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c struct {
		Cotangent [][]float64 `json:"cotangent"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %w", path, err)
	}
	if len(c.Cotangent) != rows {
		return nil, fmt.Errorf("%s: cotangent has %d rows, want one per position (%d)", path, len(c.Cotangent), rows)
	}
	flat := make([]float64, 0, rows*vocab)
	for i, r := range c.Cotangent {
		if len(r) != vocab {
			return nil, fmt.Errorf("%s: cotangent[%d] has %d values, want the vocabulary size %d", path, i, len(r), vocab)
		}
		flat = append(flat, r...)
	}
	return flat, nil
}

func runGrad[T ortrun.ComputeFloat](ck *hf.Checkpoint, o ortrun.TrainOptions, ad *peft.Adapter, ids []int64, cot []float64, stdout io.Writer) error {
	tr, err := ortrun.NewTrainer[T](ck, o)
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := tr.SetAdapter(ad); err != nil {
		return err
	}
	b := ortrun.NewTokenBatch([][]int64{ids})
	index := make([]int64, len(ids))
	for i := range index {
		index[i] = b.Index(0, i)
	}
	if _, err := tr.Forward(ortrun.GraphInputs{Batch: b, Index: index}); err != nil {
		return err
	}
	ct := make([]T, len(cot))
	for i, v := range cot {
		ct[i] = T(v)
	}
	grads, err := tr.Backward(ct)
	if err != nil {
		return err
	}
	out := map[string][][]float64{}
	for _, in := range tr.Manifest.LoRAInputs {
		g := grads[in.Name]
		rows := make([][]float64, in.Rows)
		for r := range rows {
			rows[r] = make([]float64, in.Cols)
			for c := range rows[r] {
				rows[r][c] = float64(g[r*in.Cols+c])
			}
		}
		out[peft.Key(in.Layer, in.Module, in.Which)] = rows
	}
	js, err := json.Marshal(map[string]any{"grads": out})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}
