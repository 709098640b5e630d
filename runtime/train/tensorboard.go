package train

import (
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bearrec/bear/runtime/train/tfevents"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// TensorBoardFile is the run folder's TensorBoard event file (tensorboard --logdir RUNS shows
// each run folder as a run): the curves of train.jsonl, whose values it holds as float32.
const TensorBoardFile = "events.out.tfevents.bear"

// openTensorBoard opens the run's event file at a start or resume after step done: the events
// of later steps are dropped, and those of step done are written again from train.jsonl, the
// run's record (an interruption may have come between a record and its event).
func (j *job) openTensorBoard(done int, steps []trainlog.Step) error {
	w, err := tfevents.Open(filepath.Join(j.o.Out, TensorBoardFile), int64(done)-1)
	if err != nil {
		return err
	}
	j.tb = w
	if done == 0 {
		return nil
	}
	for _, s := range steps {
		if s.Step == done {
			if err := j.stepEvent(s); err != nil {
				return err
			}
		}
	}
	for _, e := range j.evals {
		if e.Step == done {
			if err := j.evalEvent(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// stepEvent writes the scalars of a step record, at its step.
func (j *job) stepEvent(s trainlog.Step) error {
	return j.tb.Scalars(int64(s.Step), time.Now(), []tfevents.Scalar{
		{Tag: "train/loss", Value: tbValue(s.Loss)},
		{Tag: "train/lr", Value: tbValue(s.LR)},
		{Tag: "train/grad_norm", Value: tbValue(s.GradNorm)},
		{Tag: "train/tokens_per_s", Value: tbValue(s.TokensPerS)},
		{Tag: "train/pruned_share", Value: tbValue(s.PrunedShare)},
		{Tag: "train/mean_weight", Value: tbValue(s.MeanWeight)},
		{Tag: "train/epoch", Value: tbValue(s.Epoch)},
	})
}

// evalEvent writes the metrics of an evaluation record as SPLIT/METRIC ("valid/ndcg@10", the
// log's lower-case names), at the step after which it ran.
func (j *job) evalEvent(e trainlog.Eval) error {
	names := slices.Sorted(maps.Keys(e.Metrics))
	values := make([]tfevents.Scalar, len(names))
	for i, k := range names {
		values[i] = tfevents.Scalar{Tag: e.Split + "/" + strings.ToLower(k), Value: tbValue(e.Metrics[k])}
	}
	return j.tb.Scalars(int64(e.Step), time.Now(), values)
}

// tbValue is v as the event file can hold it: a finite value beyond float32's range, as a
// diverging run's gradient norm may be, becomes ±Inf (the event file refuses to round it so).
func tbValue(v float64) float64 {
	if !math.IsInf(v, 0) && math.Abs(v) > math.MaxFloat32 {
		return math.Inf(int(math.Copysign(1, v)))
	}
	return v
}
