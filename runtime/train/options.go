package train

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/comm"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// Options configure a training run. DefaultOptions gives the official run's values. Errors name
// the field at fault as train.Options.Field (an *opterr.Error).
type Options struct {
	Model     string // checkpoint folder in the Hugging Face layout
	Data      string // dataset folder (id2name4Rec.json, train_*.csv, test_*.csv)
	Dataset   string // prompt strings; "" infers them from the folder name
	Split     string // the training split (default "train": the unique train_*.csv)
	Tokenizer string // tokenizer.json
	Out       string // run folder (adapters, checkpoint, train.jsonl)

	Samples int             // use the first Samples rows of the split (0: all)
	Loss    lossgrad.Config // the loss and its parameters
	Epochs  int
	Batch   trainset.Options // steps, norm groups, micro-batches, buckets
	LR      float64          // peak learning rate
	Warmup  int              // warm-up steps of the linear schedule
	// LoRA is the adapter trained; nil with Full and no LoRA.
	LoRA        *llama.LoRASpec
	LoRADropout float64
	Full        bool   // every base weight is trained
	Seed        uint64 // LoRA initialisation, data order, dropout masks
	Policy      autodiff.Policy
	Runtime     ortrun.ModelOptions // device, threads, weight cache

	Resume string // the folder of an interrupted run to continue (Out itself)
	// Valid holds out the Valid latest rows of the split (by timestamp) from training; after
	// each epoch they are evaluated, and the adapter of the best epoch is kept (0: none).
	Valid int
	// ValidFile is a split file evaluated after each epoch instead (its rows are not removed
	// from the training split: it should hold none of them).
	ValidFile string
	// EarlyStop ends the run after EarlyStop epochs without a better validation NDCG@10 (0:
	// never). It needs Valid or ValidFile.
	EarlyStop       int
	EvalUsers       int // evaluate the first EvalUsers test users after each epoch (0: none)
	CheckpointEvery int // optimizer steps between checkpoints (0: epoch ends only)
	MaxSteps        int // stop after this many optimizer steps of the run (0: all)
	// RunFile is the file the settings were read from, if any: the run record notes it.
	RunFile string

	// Comm is the data-parallel communicator when several processes train together (mpirun;
	// package comm); nil is the one-process run.
	Comm comm.Comm `json:"-"`

	// Progress, when set, is called after every optimizer step.
	Progress func(p Progress) `json:"-"`
	// EvalProgress, when set, is called after every batch of users of an evaluation after
	// epoch e, on split "valid" (the validation rows) or "test", with the users done and the
	// total.
	EvalProgress func(split string, e, done, total int) `json:"-"`
	// Log, when set, receives one-line notes (resume, evaluation, checkpoints).
	Log func(format string, args ...any) `json:"-"`
}

// Progress is what a progress display needs after each optimizer step.
type Progress struct {
	Step, Total int // optimizer steps done in the run, and planned
	Loss        float64
	TokensPerS  float64
}

// DefaultOptions are the official train_bear.py's defaults: BEAR with tau 1, xi (topk_tau) 1 and
// lambda (topk_weight) 1 (the released Toy run passes xi 2.75, lambda 0.25), 10 epochs, 128
// sequences per step in groups of 16, lr 1e-4 with 20 warm-up steps, LoRA r 8 alpha 16 dropout
// 0.05 on q_proj and v_proj, seed 42.
func DefaultOptions() Options {
	return Options{
		Split: "train", Loss: lossgrad.Config{Kind: lossgrad.BEAR, Tau: 1, Xi: 1, Lambda: 1, K: 10}, Epochs: 10, Batch: trainset.DefaultOptions(),
		LR: 1e-4, Warmup: 20, LoRA: &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16},
		LoRADropout: 0.05, Seed: 42, Policy: autodiff.Stash, CheckpointEvery: 20,
	}
}

// opt names a field of Options in errors.
func opt(field string) string { return "train.Options." + field }

// Validate checks every option before any work starts; an error is an *opterr.Error naming the
// field.
func (o *Options) Validate() error {
	var err error
	for _, f := range []struct{ name, v string }{{"Model", o.Model}, {"Data", o.Data}, {"Out", o.Out}} {
		if f.v == "" {
			return opterr.New(opt(f.name), nil, "required")
		}
	}
	switch {
	case o.Samples < 0:
		return opterr.New(opt("Samples"), o.Samples, "want 0 (all rows) or a positive count")
	case o.Epochs < 1:
		return opterr.New(opt("Epochs"), o.Epochs, "want at least 1")
	case !(o.LR > 0) || o.LR > 1:
		return opterr.New(opt("LR"), o.LR, "want a learning rate in (0, 1]")
	case o.Warmup < 0:
		return opterr.New(opt("Warmup"), o.Warmup, "want 0 or more steps")
	case !(o.LoRADropout >= 0 && o.LoRADropout < 1):
		return opterr.New(opt("LoRADropout"), o.LoRADropout, "want a probability in [0, 1)")
	case o.LoRA == nil && !o.Full:
		return opterr.New(opt("LoRA"), nil, "nothing to train: give LoRA targets or set %s", opt("Full"))
	case o.LoRA == nil && o.LoRADropout > 0:
		return opterr.New(opt("LoRADropout"), o.LoRADropout, "without LoRA targets")
	case o.Valid < 0:
		return opterr.New(opt("Valid"), o.Valid, "want 0 (no validation) or a positive count of rows")
	case o.Valid > 0 && o.ValidFile != "":
		return opterr.New(opt("ValidFile"), o.ValidFile, "and %s %d: give one validation set", opt("Valid"), o.Valid)
	case o.EarlyStop < 0:
		return opterr.New(opt("EarlyStop"), o.EarlyStop, "want 0 (never) or a positive count of epochs")
	case o.EarlyStop > 0 && !o.validates():
		return opterr.New(opt("EarlyStop"), o.EarlyStop, "needs a validation set (%s or %s): the test split never selects", opt("Valid"), opt("ValidFile"))
	case o.EvalUsers < 0:
		return opterr.New(opt("EvalUsers"), o.EvalUsers, "must not be negative")
	case o.CheckpointEvery < 0:
		return opterr.New(opt("CheckpointEvery"), o.CheckpointEvery, "must not be negative")
	case o.MaxSteps < 0:
		return opterr.New(opt("MaxSteps"), o.MaxSteps, "must not be negative")
	}
	if err = o.Loss.Validate(); err != nil {
		return err // it names the lossgrad.Config field
	}
	if err := o.validateLoRA(); err != nil {
		return err
	}
	o.Batch.Seed = o.Seed // one seed: LoRA initialisation, data order and dropout masks
	if o.Batch, err = o.Batch.Validate(); err != nil {
		return err
	}
	if n, g := o.comm().Size(), o.Batch.Batch/o.Batch.NormGroup; n > g {
		return fmt.Errorf("%d processes but %s %d / %s %d = %d norm groups per step: each process computes whole norm groups, so start at most %d (or use a smaller %s)",
			n, opt("Batch.Batch"), o.Batch.Batch, opt("Batch.NormGroup"), o.Batch.NormGroup, g, g, opt("Batch.NormGroup"))
	}
	if o.Resume != "" && filepath.Clean(o.Resume) != filepath.Clean(o.Out) {
		return opterr.New(opt("Resume"), o.Resume, "a run continues in its own folder: set %s to it too", opt("Out"))
	}
	return nil
}

// validates reports whether the run evaluates a validation set after each epoch.
func (o *Options) validates() bool { return o.Valid > 0 || o.ValidFile != "" }

// validateLoRA checks the LoRA spec, with its targets sorted.
func (o *Options) validateLoRA() error {
	if o.LoRA == nil {
		return nil
	}
	slices.Sort(o.LoRA.Targets)
	for i := 1; i < len(o.LoRA.Targets); i++ {
		if o.LoRA.Targets[i] == o.LoRA.Targets[i-1] {
			return opterr.New(opt("LoRA.Targets"), nil, "%s is listed twice", o.LoRA.Targets[i])
		}
	}
	if err := o.LoRA.Validate(); err != nil {
		return err // it names the llama.LoRASpec field
	}
	return nil
}

// logitsMode is what the loss needs from the LM head: the whole vocabulary for LML, only the
// union of the micro-batch's allowed tokens for MSL and BEAR.
func (o *Options) logitsMode() llama.LogitsMode {
	if o.Loss.Kind == lossgrad.LML {
		return llama.LogitsFullVocab
	}
	return llama.LogitsSubset
}

func (o *Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}
