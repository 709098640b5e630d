package train

import (
	"errors"
	"fmt"
	"github.com/bearrec/bear/internal/opterr"
	"math"
	"math/rand/v2"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainset"
	"github.com/bearrec/bear/tokenize"
)

// data is the tokenised training split.
type data struct {
	*tokenize.Split
	rows  []tokenize.Row // the rows trained on: Split.Rows less the held-out ones, cut to Samples
	set   *trainset.Set
	valid *validation // nil: no validation set
}

// loadData reads the dataset folder, tokenises the training split and builds its examples.
func loadData(o *Options) (*data, error) {
	sp, err := tokenize.LoadSplit(o.Data, o.Dataset, o.Split, o.Tokenizer)
	if err != nil {
		if de := (*tokenize.DatasetError)(nil); errors.As(err, &de) {
			return nil, opterr.Wrap(opt("Dataset"), nil, err)
		}
		return nil, err
	}
	valid, rows, err := loadValidation(o, sp)
	if err != nil {
		return nil, err
	}
	if o.Samples > 0 {
		if o.Samples > len(rows) {
			return nil, opterr.New(opt("Samples"), o.Samples, "%s has only %d rows%s (0 uses them all)", sp.Path, len(rows), heldOutNote(valid))
		}
		rows = rows[:o.Samples]
	}
	set, err := trainset.Build(sp.Tok, sp.Prompt, sp.Items, rows, o.Batch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sp.Path, err)
	}
	return &data{Split: sp, rows: rows, set: set, valid: valid}, nil
}

// heldOutNote says how many rows validation took from the split, if any.
func heldOutNote(v *validation) string {
	if v == nil || v.csv == nil {
		return ""
	}
	return fmt.Sprintf(" once the %d validation rows are held out", v.rows)
}

// newTrainer builds the training graphs of the run and their sessions.
func newTrainer(o *Options, ck *hf.Checkpoint) (*ortrun.Trainer[float32], error) {
	mo := o.Runtime
	mo.LoRA, mo.Logits = o.LoRA, o.logitsMode()
	mo.SessionOptions.VaryingShapes = true
	return ortrun.NewTrainer[float32](ck, ortrun.TrainOptions{Model: mo, Policy: o.Policy, Full: o.Full, LoRADropout: o.LoRADropout})
}

// initLoRA initialises the LoRA matrices as PEFT does: A Kaiming-uniform with a = √5, which is
// U(-1/√in, 1/√in) (gain √(2/(1+a²)) = √(1/3) times √(3/in)), B zero, so the adapted model
// starts as the base model. The values are a function of the seed alone, module by module in
// the graph's order.
func initLoRA(tr *ortrun.Trainer[float32], seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x4c6f5241)) // "LoRA"
	for _, in := range tr.Manifest.LoRAInputs {
		p := tr.Params[in.Name]
		if in.Which == "B" {
			clear(p)
			continue
		}
		bound := 1 / math.Sqrt(float64(in.Cols))
		for i := range p {
			p[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
}

// params pairs every trainable buffer of the trainer with a gradient accumulator, in the
// manifest's order (which fixes the order of the clipping norm's sum).
func params(tr *ortrun.Trainer[float32]) []optim.Param {
	var ps []optim.Param
	for _, name := range tr.Manifest.Trainable {
		v := tr.Params[name]
		ps = append(ps, optim.Param{Name: name, Value: v, Grad: make([]float32, len(v))})
	}
	return ps
}

// newObjective is the run's loss, un-normalised so that micro-batches add up within a group.
func newObjective(o *Options) (*lossgrad.Objective[float32], error) {
	cfg := o.Loss
	cfg.Unnormalised = true
	return lossgrad.NewObjective[float32](cfg)
}
