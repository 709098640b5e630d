package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train"
	"github.com/bearrec/bear/runtime/train/comm"
)

func init() {
	register(&command{name: "train", summary: "fine-tune with LML, MSL or BEAR: PEFT adapters, exact resume, train.jsonl", run: func(args []string) error {
		return trainMain(args, os.Stdout, os.Stderr)
	}, options: joinOptions(trainOptions, ortOptions)})
}

const trainUsage = `--model DIR --data DIR --loss lml|msl|bear --out DIR [flags]

Fine-tunes a Llama checkpoint on an Amazon training split (train_*.csv) as the official
train_lml.py / train_msl.py / train_bear.py do, with LoRA (PEFT's layout) or --train full.
Writes DIR/epoch-N and DIR/final (adapter_config.json + adapter_model.safetensors, or a whole
checkpoint with --train full), DIR/checkpoint.safetensors (every --checkpoint-every steps and
at each epoch's end; Ctrl-C saves one after the step in progress), DIR/train.jsonl (one line
per optimizer step and evaluation; bear plot draws it) and DIR/events.out.tfevents.bear (the
same values for TensorBoard). --resume DIR --out DIR continues exactly. With --valid N the N
latest rows of the split are held out (DIR/valid.csv), evaluated after each epoch, and
DIR/best keeps the model of the best epoch; --early-stop P ends the run after P epochs
without improvement. --config FILE.yaml reads the flags from a run file (recipes/ has the
official runs'); flags given here override it; --print-config prints the result.

flags:`

// runFlags are the flags of `bear train`.
type runFlags struct {
	model, data, dataset, split, tokenizer, out, loss, targets, trainMode, policy, resume *string
	validFile                                                                             *string
	samples, epochs, batch, normGroup, micro, bucket, warmup, k, rank, evalUsers, every   *int
	maxSteps, valid, earlyStop                                                            *int
	lr, tau, xi, lambda, alpha, dropout                                                   *float64
	seed                                                                                  *uint64
	noProgress                                                                            *bool
	fs                                                                                    *flag.FlagSet
	ort                                                                                   ortFlags
	runFile                                                                               string // --config, when given
}

func defineRunFlags(fs *flag.FlagSet) *runFlags {
	d := train.DefaultOptions()
	return &runFlags{
		model:      fs.String("model", "", "checkpoint folder in the HF layout (required)"),
		data:       fs.String("data", "", "dataset folder: id2name4Rec.json, train_*.csv, test_*.csv (required)"),
		dataset:    fs.String("dataset", "", "prompt strings: Office, Book, Clothing, Toy, ... (default: the data folder's name)"),
		split:      fs.String("split", d.Split, "training split: NAME (the file NAME_*.csv in --data), a file name in --data, or a path"),
		tokenizer:  fs.String("tokenizer", "", "tokenizer.json (default: MODEL/tokenizer.json, then $BEAR_TOKENIZER, then the one make deps fetched)"),
		out:        fs.String("out", "", "run folder (required)"),
		loss:       fs.String("loss", "", "lml, msl or bear (required)"),
		samples:    fs.Int("samples", 0, "train on the first N rows of the split (0: all; the official train_10000.csv has 10000)"),
		epochs:     fs.Int("epochs", d.Epochs, "epochs"),
		batch:      fs.Int("batch", d.Batch.Batch, "sequences per optimizer step"),
		normGroup:  fs.Int("norm-group", d.Batch.NormGroup, "sequences whose loss is normalised together (official: 16 per device × 8 devices = --batch 128)"),
		micro:      fs.Int("micro-batch", d.Batch.Micro, "most sequences per forward/backward pass (the gradient does not depend on it; at most --norm-group)"),
		bucket:     fs.Int("bucket", d.Batch.Bucket, "sequence lengths are padded up to a multiple of this (fewer shapes, reused buffers)"),
		lr:         fs.Float64("lr", d.LR, "peak learning rate"),
		warmup:     fs.Int("warmup", d.Warmup, "warm-up steps of the linear schedule"),
		tau:        fs.Float64("tau", d.Loss.Tau, "softmax temperature"),
		xi:         fs.Float64("xi", d.Loss.Xi, "BEAR: temperature of the sigmoid on the pruning margin (official Toy: 2.75)"),
		lambda:     fs.Float64("lambda", d.Loss.Lambda, "BEAR: weight of the regulariser (official Toy: 0.25)"),
		k:          fs.Int("k", d.Loss.K, "beam width whose top-K the BEAR weight and the pruning share refer to"),
		rank:       fs.Int("lora-r", d.LoRA.Rank, "LoRA rank"),
		alpha:      fs.Float64("lora-alpha", d.LoRA.Alpha, "LoRA alpha (scaling alpha/r)"),
		dropout:    fs.Float64("lora-dropout", d.LoRADropout, "LoRA dropout on the adapter's input"),
		targets:    fs.String("lora-targets", strings.Join(d.LoRA.Targets, ","), "LoRA target modules (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; none with --train full)"),
		trainMode:  fs.String("train", "lora", "lora, or full: train every weight of the model (with LoRA too unless --lora-targets none)"),
		seed:       fs.Uint64("seed", d.Seed, "seed of the LoRA initialisation, the data order and the dropout masks"),
		policy:     fs.String("policy", "", "residual policy of the backward graph: stash or recompute (default: stash on the CPU, recompute with --device cuda)"),
		resume:     fs.String("resume", "", "continue the interrupted run in this folder (give the same --out and flags)"),
		evalUsers:  fs.Int("eval-users", 0, "after each epoch, evaluate on the first N test users and log NDCG/HR@1,5,10 (0: none); for watching only: the test split never selects the model"),
		valid:      fs.Int("valid", 0, "hold out the N latest rows of the split (by timestamp) from training; after each epoch, evaluate them as bear eval does, log NDCG/HR@1,5,10 and keep the best epoch's model in OUT/best (0: none)"),
		validFile:  fs.String("valid-file", "", "validation split `FILE` (the split format) evaluated after each epoch instead of held-out rows; it should share no rows with the training split"),
		earlyStop:  fs.Int("early-stop", 0, "stop after N epochs without a better validation NDCG@10 (0: never; needs --valid or --valid-file)"),
		every:      fs.Int("checkpoint-every", d.CheckpointEvery, "optimizer steps between checkpoints (0: only at epoch ends)"),
		maxSteps:   fs.Int("max-steps", 0, "stop after N optimizer steps, which also sets the schedule's length, as HF's max_steps (0: --epochs)"),
		noProgress: fs.Bool("no-progress", false, "no progress bar: plain progress lines instead (at the start, once a minute, at the end), as when stderr is not a terminal"),
		ort:        addORTFlags(fs),
		fs:         fs,
	}
}

func trainMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", trainUsage)
	fs.SetOutput(stderr)
	f := defineRunFlags(fs)
	rf := addRunFileFlags(fs, "lora-targets")
	if err := rf.parse(fs, args); err != nil {
		return err
	}
	f.runFile = *rf.path
	if *rf.print {
		return rf.wrap(printTrainConfig(f, rf, stdout))
	}
	world, err := comm.Init()
	if err != nil {
		return err
	}
	return finishRanks("train", world, rf.wrap(trainRanks(f, world, stdout, stderr)))
}

// policyFor is the residual policy given, or the device's default: stash on the CPU, where it
// is the faster; recompute on CUDA, where stash would carry every stashed activation from the
// forward run through host memory into the backward run, at every step (1 867 MiB per step on
// the small preset with 16 sequences, against 3 MiB under recompute: ort_io_mb of bear bench
// train).
func policyFor(given, device string) (autodiff.Policy, error) {
	if given != "" {
		return autodiff.ParsePolicy(given)
	}
	if device == string(ortrun.CUDA) {
		return autodiff.Recompute, nil
	}
	return autodiff.Stash, nil
}

// printTrainConfig checks the settings as a run would before its work starts, then prints them.
func printTrainConfig(f *runFlags, rf *runFileFlags, stdout io.Writer) error {
	o, err := f.options()
	if err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if err := f.ort.check(); err != nil {
		return err
	}
	return rf.printConfig(stdout, f.fs)
}

// trainRanks runs the training of this process, one rank of world's job (of one or more).
func trainRanks(f *runFlags, world comm.Comm, stdout, stderr io.Writer) error {
	o, err := f.options()
	if err != nil {
		return err
	}
	o.Comm = world
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Runtime, err = f.ort.modelOptions(); err != nil {
		return err
	}
	if o.Runtime.Device == ortrun.CUDA {
		o.Runtime.CUDADevice = comm.LocalDevice() // one GPU per rank
	}
	var rp runProgress
	if world.Rank() != 0 {
		stdout = io.Discard
	} else { // rank 0 speaks for the job
		rp = runProgress{w: stderr, bar: useBar(stderr, *f.noProgress), now: time.Now}
		o.Progress, o.EvalProgress = rp.step, rp.eval
		o.Log = func(format string, a ...any) {
			rp.finish() // a note ends the bar's line rather than overwrite it
			fmt.Fprintf(stderr, "bear train: "+format+"\n", a...)
		}
		if world.Size() > 1 {
			o.Log("data-parallel over %d processes (MPI): rank 0 writes %s", world.Size(), o.Out)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := train.Run(ctx, o)
	rp.finish()
	if err != nil {
		return err
	}
	printSummary(stdout, o, sum)
	return nil
}

// printSummary says what the run did: its steps and losses, where it stopped and why, and
// which model validation chose.
func printSummary(w io.Writer, o train.Options, sum *train.Summary) {
	switch {
	case sum.FirstStep == 0 && sum.StoppedEarly != "":
		fmt.Fprintf(w, "nothing to do: the run in %s stopped early at step %d of %d: %s\n", o.Out, sum.Steps, sum.Total, sum.StoppedEarly)
	case sum.FirstStep == 0:
		fmt.Fprintf(w, "nothing to do: the run in %s has done its %d steps\n", o.Out, sum.Total)
	default:
		fmt.Fprintf(w, "trained %d steps (loss %.4f at step %d, %.4f at step %d); model in %s, log %s (bear plot), %s (tensorboard --logdir %s)\n",
			sum.Steps, sum.FirstLoss, sum.FirstStep, sum.LastLoss, sum.Steps, sum.Final, filepath.Join(o.Out, train.LogFile),
			filepath.Join(o.Out, train.TensorBoardFile), filepath.Dir(filepath.Clean(o.Out)))
		if sum.StoppedEarly != "" {
			fmt.Fprintf(w, "stopped early at step %d of %d: %s\n", sum.Steps, sum.Total, sum.StoppedEarly)
		}
	}
	if b := sum.Best; b != nil {
		fmt.Fprintf(w, "best epoch on validation: %d (NDCG@10 %.4f on %d rows): %s\n", b.Epoch, b.Value, b.Rows, filepath.Join(o.Out, train.BestDir))
	}
}

// finishRanks ends this process's part in a job of several ranks. An error other than an
// interrupt that every rank agreed on ends the whole job through MPI_Abort, since the other
// ranks may be waiting for this one inside a collective; mpirun then reports the abort.
func finishRanks(cmd string, world comm.Comm, err error) error {
	if world.Size() == 1 {
		return err
	}
	if err != nil && !errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "bear %s: rank %d of %d: %s\nbear %s: ending every rank of the job\n", cmd, world.Rank(), world.Size(),
			describe(err, joinOptions(trainOptions, ortOptions)), cmd)
		world.Abort(1)
	}
	if ferr := world.Finalize(); err == nil {
		err = ferr
	}
	return err
}

// options turns the flags into train.Options (validated by train.Options.Validate).
func (f *runFlags) options() (train.Options, error) {
	o := train.DefaultOptions()
	kind, err := lossgrad.ParseKind(*f.loss)
	if err != nil {
		return o, fmt.Errorf("--loss: %w", err)
	}
	o.Model, o.Data, o.Dataset, o.Split, o.Out = *f.model, *f.data, *f.dataset, *f.split, *f.out
	o.Samples, o.Epochs, o.LR, o.Warmup, o.Seed, o.Resume = *f.samples, *f.epochs, *f.lr, *f.warmup, *f.seed, *f.resume
	o.Loss = lossgrad.Config{Kind: kind, Tau: *f.tau, Xi: *f.xi, Lambda: *f.lambda, K: *f.k}
	o.Batch.Batch, o.Batch.NormGroup, o.Batch.Micro, o.Batch.Bucket = *f.batch, *f.normGroup, *f.micro, *f.bucket
	o.LoRADropout, o.EvalUsers, o.CheckpointEvery, o.MaxSteps = *f.dropout, *f.evalUsers, *f.every, *f.maxSteps
	o.Valid, o.ValidFile, o.EarlyStop, o.RunFile = *f.valid, *f.validFile, *f.earlyStop, f.runFile
	switch *f.trainMode {
	case "lora":
	case "full":
		o.Full = true
	default:
		return o, fmt.Errorf("--train %q: want lora or full", *f.trainMode)
	}
	if o.Policy, err = policyFor(*f.policy, *f.ort.device); err != nil {
		return o, fmt.Errorf("--policy: %w", err)
	}
	o.LoRA = &llama.LoRASpec{Targets: strings.Split(*f.targets, ","), Rank: *f.rank, Alpha: *f.alpha}
	if *f.targets == "none" || *f.targets == "" {
		o.LoRA = nil
		if !isFlagSet(f.fs, "lora-dropout") {
			o.LoRADropout = 0
		}
	} else if err := checkLoRAFlags(*f.rank, *f.alpha); err != nil {
		return o, err
	}
	if err := f.checkFloats(); err != nil {
		return o, err
	}
	if *f.model != "" {
		if o.Tokenizer, err = findTokenizer(*f.tokenizer, *f.model); err != nil {
			return o, err
		}
	}
	return o, nil
}

// checkFloats refuses NaN and infinities in the real-valued flags, which the range checks of
// train.Options.Validate would let through in part (a NaN compares false with every bound).
func (f *runFlags) checkFloats() error {
	for _, v := range []struct {
		name string
		v    float64
	}{{"lr", *f.lr}, {"tau", *f.tau}, {"xi", *f.xi}, {"lambda", *f.lambda}, {"lora-dropout", *f.dropout}} {
		if err := checkFinite(v.name, v.v); err != nil {
			return err
		}
	}
	return nil
}
