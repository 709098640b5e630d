package train

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/comm"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// Options configure a training run. DefaultOptions gives the official run's values; the fields a
// user sets are named after the flags of `bear train`, which the errors name.
type Options struct {
	Model     string // --model: checkpoint folder in the Hugging Face layout
	Data      string // --data: dataset folder (id2name4Rec.json, train_*.csv, test_*.csv)
	Dataset   string // --dataset: prompt strings; "" infers them from the folder name
	Split     string // --split: the training split (default "train": the unique train_*.csv)
	Tokenizer string // --tokenizer: tokenizer.json
	Out       string // --out: run folder (adapters, checkpoint, train.jsonl)

	Samples int             // --samples: use the first N rows of the split (0: all)
	Loss    lossgrad.Config // --loss, --tau, --xi, --lambda, --k
	Epochs  int             // --epochs
	Batch   trainset.Options
	LR      float64 // --lr: peak learning rate
	Warmup  int     // --warmup: warm-up steps of the linear schedule
	// LoRA is --lora-r/--lora-alpha/--lora-targets; nil with Full and no LoRA.
	LoRA        *llama.LoRASpec
	LoRADropout float64 // --lora-dropout
	Full        bool    // --train full: every base weight is trained
	Seed        uint64  // --seed: LoRA initialisation, data order, dropout masks
	Policy      autodiff.Policy
	Session     ortrun.ModelOptions // --device, --threads, --cache-dir

	Resume          string // --resume: the folder of an interrupted run to continue
	EvalUsers       int    // --eval-users: evaluate the first N test users after each epoch (0: none)
	CheckpointEvery int    // --checkpoint-every: optimizer steps between checkpoints (0: epoch ends only)
	MaxSteps        int    // --max-steps: stop after this many optimizer steps of the run (0: all)

	// Comm is the data-parallel communicator when several processes train together (mpirun;
	// package comm); nil is the one-process run.
	Comm comm.Comm `json:"-"`

	// Progress, when set, is called after every optimizer step.
	Progress func(p Progress) `json:"-"`
	// EvalProgress, when set, is called after every batch of users of the evaluation after
	// epoch e with the users done and the total.
	EvalProgress func(e, done, total int) `json:"-"`
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

// Validate checks every option before any work starts; errors name the flag.
func (o *Options) Validate() error {
	var err error
	switch {
	case o.Model == "" || o.Data == "" || o.Out == "":
		return fmt.Errorf("--model, --data and --out are required")
	case o.Samples < 0:
		return fmt.Errorf("--samples %d: want 0 (all rows) or a positive count", o.Samples)
	case o.Epochs < 1:
		return fmt.Errorf("--epochs %d: want at least 1", o.Epochs)
	case !(o.LR > 0) || o.LR > 1:
		return fmt.Errorf("--lr %g: want a learning rate in (0, 1]", o.LR)
	case o.Warmup < 0:
		return fmt.Errorf("--warmup %d: want 0 or more steps", o.Warmup)
	case !(o.LoRADropout >= 0 && o.LoRADropout < 1):
		return fmt.Errorf("--lora-dropout %g: want a probability in [0, 1)", o.LoRADropout)
	case o.LoRA == nil && !o.Full:
		return fmt.Errorf("nothing to train: give LoRA targets or --train full")
	case o.LoRA == nil && o.LoRADropout > 0:
		return fmt.Errorf("--lora-dropout %g without LoRA targets", o.LoRADropout)
	case o.EvalUsers < 0 || o.CheckpointEvery < 0 || o.MaxSteps < 0:
		return fmt.Errorf("--eval-users, --checkpoint-every and --max-steps must not be negative")
	}
	if err = o.Loss.Validate(); err != nil {
		return fmt.Errorf("loss flags: %w", err)
	}
	if o.LoRA != nil {
		slices.Sort(o.LoRA.Targets)
		for i := 1; i < len(o.LoRA.Targets); i++ {
			if o.LoRA.Targets[i] == o.LoRA.Targets[i-1] {
				return fmt.Errorf("--lora-targets: %s is listed twice", o.LoRA.Targets[i])
			}
		}
		if err = o.LoRA.Validate(); err != nil {
			return fmt.Errorf("LoRA flags: %w", err)
		}
	}
	o.Batch.Seed = o.Seed // one seed: LoRA initialisation, data order and dropout masks
	if o.Batch, err = o.Batch.Validate(); err != nil {
		return err
	}
	if n, g := o.comm().Size(), o.Batch.Batch/o.Batch.NormGroup; n > g {
		return fmt.Errorf("%d processes but --batch %d / --norm-group %d = %d norm groups per step: each process computes whole norm groups, so start at most %d (or use smaller --norm-group)",
			n, o.Batch.Batch, o.Batch.NormGroup, g, g)
	}
	if o.Resume != "" && filepath.Clean(o.Resume) != filepath.Clean(o.Out) {
		return fmt.Errorf("--resume %s: a run continues in its own folder; pass --out %s too", o.Resume, o.Resume)
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
