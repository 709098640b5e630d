package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/bearrec/bear/runtime/train"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// The dump of `bear bench train --dump FILE` is JSON lines: a trainDumpHeader, then one
// trainDumpStep per optimizer step run (warm-up first). tools/reference/bench_train.py replays
// it, so that PyTorch does the very work bear did: same rows, tokenisation, padding, micro-batches,
// supervised positions, allowed sets, loss settings and optimizer.

// trainDumpHeader is the first line of a dump. Its loss, LoRA and optimizer fields and the steps'
// micro-batches use the names of runtime/train's reference case (tools/reference/trainref.py).
type trainDumpHeader struct {
	Kind  string         `json:"kind"` // "header"
	Model string         `json:"model"`
	Loss  trainDumpLoss  `json:"loss"`
	LoRA  *trainDumpLoRA `json:"lora"` // nil: --train full
	Optim trainDumpOptim `json:"optim"`
	// Batch, NormGroup and MicroBatch are the batching options the steps were cut with.
	Batch      int `json:"batch"`
	NormGroup  int `json:"norm_group"`
	MicroBatch int `json:"micro_batch"`
	// WarmupSteps are the dump's first, untimed steps; Steps the timed ones after them.
	WarmupSteps int `json:"warmup_steps"`
	Steps       int `json:"steps"`
}

// trainDumpLoss is the loss's configuration.
type trainDumpLoss struct {
	Kind   string  `json:"kind"` // lml, msl or bear
	Tau    float64 `json:"tau"`
	Xi     float64 `json:"xi"`
	Lambda float64 `json:"lambda"`
	K      int     `json:"k"`
}

// trainDumpLoRA is the adapter's shape and dropout (PEFT's names).
type trainDumpLoRA struct {
	Targets []string `json:"targets"`
	Rank    int      `json:"r"`
	Alpha   float64  `json:"alpha"`
	Dropout float64  `json:"dropout"`
}

// trainDumpOptim is the optimizer step: clipping, AdamW and the linear warm-up schedule.
type trainDumpOptim struct {
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	MaxGradNorm float64 `json:"max_grad_norm"`
	Warmup      int     `json:"warmup"`
	Total       int     `json:"total"` // optimizer steps of the schedule
}

// trainDumpStep is one optimizer step: its norm groups, each with its micro-batches.
type trainDumpStep struct {
	Kind      string           `json:"kind"` // "step"
	Step      int              `json:"step"` // global index, from 0
	Tokens    int              `json:"tokens"`
	Positions int              `json:"positions"`
	Groups    []trainDumpGroup `json:"groups"`
}

// trainDumpGroup is one norm group (one device of the official run).
type trainDumpGroup struct {
	Micro []trainDumpMicro `json:"micro"`
}

// trainDumpMicro is one forward/backward pass in trainset.MicroBatch's layout: B left-padded
// rows of T slots ([B·T] row-major ids, mask, positions); Index[p] is the flat slot whose logit
// predicts Targets[p], whose allowed tokens (sorted ids) are Allowed[p]. Rows are the examples'
// indices in the split (its data rows, from 0).
type trainDumpMicro struct {
	Rows    []int   `json:"rows"`
	B       int     `json:"b"`
	T       int     `json:"t"`
	IDs     []int64 `json:"ids"`
	Mask    []int64 `json:"mask"`
	Pos     []int64 `json:"pos"`
	Index   []int64 `json:"index"`
	Targets []int   `json:"targets"`
	Allowed [][]int `json:"allowed"`
}

// writeTrainDump cuts the micro-batches of the steps that ran again from the run's training set
// (a fresh Batcher: steps are a function of the set and the step index) and writes them to
// path, checking each step's token and position counts against what the benchmark measured.
func writeTrainDump(path string, o train.Options, set *trainset.Set, ran []stepSample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	err = enc.Encode(dumpHeader(o, len(ran)-warmupSteps))
	b := set.NewBatcher()
	spe := set.StepsPerEpoch()
	for global := 0; err == nil && global < len(ran); global++ {
		var st *trainset.Step
		if st, err = b.Step(global/spe, global%spe); err != nil {
			break
		}
		if st.Tokens != ran[global].tokens || st.Positions != ran[global].positions {
			err = fmt.Errorf("step %d: rebuilt %d tokens and %d positions, the benchmark ran %d and %d",
				global, st.Tokens, st.Positions, ran[global].tokens, ran[global].positions)
			break
		}
		err = enc.Encode(dumpStep(global, st))
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return nil
}

func dumpHeader(o train.Options, steps int) trainDumpHeader {
	adam := optim.DefaultAdamW()
	h := trainDumpHeader{
		Kind: "header", Model: o.Model,
		Loss: trainDumpLoss{Kind: o.Loss.Kind.String(), Tau: o.Loss.Tau, Xi: o.Loss.Xi, Lambda: o.Loss.Lambda, K: o.Loss.K},
		Optim: trainDumpOptim{LR: o.LR, Beta1: adam.Beta1, Beta2: adam.Beta2, Eps: adam.Eps, WeightDecay: adam.WeightDecay,
			MaxGradNorm: 1.0, // runtime/train's max_grad_norm, the HF Trainer's default
			Warmup:      o.Warmup, Total: o.MaxSteps},
		Batch: o.Batch.Batch, NormGroup: o.Batch.NormGroup, MicroBatch: min(o.Batch.Micro, o.Batch.NormGroup),
		WarmupSteps: warmupSteps, Steps: steps,
	}
	if o.LoRA != nil {
		h.LoRA = &trainDumpLoRA{Targets: o.LoRA.Targets, Rank: o.LoRA.Rank, Alpha: o.LoRA.Alpha, Dropout: o.LoRADropout}
	}
	return h
}

func dumpStep(global int, st *trainset.Step) trainDumpStep {
	d := trainDumpStep{Kind: "step", Step: global, Tokens: st.Tokens, Positions: st.Positions}
	for _, g := range st.Groups {
		var dg trainDumpGroup
		for _, mb := range g.Micro {
			dg.Micro = append(dg.Micro, trainDumpMicro{Rows: mb.Rows, B: mb.B, T: mb.T, IDs: mb.IDs, Mask: mb.Mask, Pos: mb.Pos,
				Index: mb.Index, Targets: mb.Targets, Allowed: mb.Allowed})
		}
		d.Groups = append(d.Groups, dg)
	}
	return d
}
