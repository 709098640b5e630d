package train

import (
	"context"
	"errors"
	"fmt"
	"github.com/bearrec/bear/internal/opterr"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/tfevents"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"github.com/bearrec/bear/runtime/train/trainset"
	"github.com/bearrec/bear/tokenize"
)

// ErrInterrupted is wrapped by Run's error when its context was cancelled (Ctrl-C): the
// checkpoint of the last finished step is saved and the run can be resumed.
var ErrInterrupted = errors.New("interrupted")

// evalSplit is the split file EvalUsers evaluates on.
const evalSplit = "test"

// Summary describes a finished (or interrupted) run.
type Summary struct {
	Steps, Total int    // optimizer steps done, and planned
	Final        string // folder of the final adapter (or checkpoint)
	// FirstStep is the first step this process ran (1-based) and FirstLoss its loss; LastLoss
	// is the loss of the last step.
	FirstStep           int
	FirstLoss, LastLoss float64
	Evals               []trainlog.Eval
	// StoppedEarly says why the run ended before Total steps ("": it did not): its validation
	// NDCG@10 stopped improving (Options.EarlyStop).
	StoppedEarly string
	// Best is best/'s selection (nil without a validation set).
	Best *trainlog.Selection
}

// job is a prepared run.
type job struct {
	o     *Options
	d     *data
	tr    *ortrun.Trainer[float32]
	st    *stepper
	id    map[string]string
	log   *trainlog.Writer
	lock  *atomicfs.DirLock // of o.Out, on the rank that writes
	total int
	// lastRec is the log record of the last step done, which checkpoints keep a copy of.
	lastRec *trainlog.Step
	// pendingEval is the epoch whose evaluation an interruption stopped (0: none): it runs
	// before the next step. evalStopped is the epoch whose evaluation this run's interrupt stopped.
	pendingEval, evalStopped int
	// evals are the log's evaluations (rank 0), the resumed run's included: best/ and early
	// stopping are decided on them.
	evals []trainlog.Eval
	tb    *tfevents.Writer // rank 0's TensorBoard event file
	start time.Time
}

// Run trains as o says, writing into o.Out: an adapter per epoch (epoch-N) and at the end
// (final), checkpoint.safetensors every o.CheckpointEvery steps and at each epoch's end, and
// train.jsonl; o.Out is locked for the run. Cancelling ctx stops after the step in progress (or
// at once during the evaluation after an epoch, which a resumed run finishes first), saves a
// checkpoint and returns an error wrapping ErrInterrupted.
func Run(ctx context.Context, o Options) (*Summary, error) {
	j, err := newJob(&o)
	if err != nil {
		return nil, err
	}
	defer j.close()
	sum, err := j.loop(ctx)
	if s, serr := trainlog.ReadSelection(filepath.Join(o.Out, BestDir)); serr == nil && o.validates() && o.writer() {
		sum.Best = &s
	}
	return sum, err
}

// newJob validates the options, reads the data, builds the graphs and restores or initialises
// the trainable values.
func newJob(o *Options) (*job, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	d, err := loadData(o) // before --out is created: bad data leaves nothing behind
	if err != nil {
		return nil, err
	}
	ck, err := hf.Open(o.Model)
	if err != nil {
		return nil, err
	}
	if err := checkVocab(o, d, ck.Config.VocabSize); err != nil {
		return nil, err
	}
	if err := checkEvaluation(o, d); err != nil {
		return nil, err
	}
	j := &job{o: o, d: d, start: time.Now()}
	if err := j.setUp(ck); err != nil {
		j.close()
		return nil, err
	}
	return j, nil
}

// setUp claims the run folder, builds the sessions, restores or initialises the run's state on
// every rank, and opens the log (rank 0).
func (j *job) setUp(ck *hf.Checkpoint) error {
	o, d := j.o, j.d
	var err error
	if o.writer() {
		if j.lock, err = claimOut(o, d); err != nil {
			return err
		}
		if err := d.valid.write(); err != nil {
			return err
		}
	}
	if j.id, err = identity(o, d, ck); err != nil {
		return err
	}
	j.total = o.Epochs * d.set.StepsPerEpoch()
	if o.MaxSteps > 0 {
		j.total = o.MaxSteps // as HF's max_steps: it also sets the schedule's length
	}
	if j.tr, err = newTrainer(o, ck); err != nil {
		return err
	}
	if j.st, err = newStepper(o, j.tr, d.set, j.total); err != nil {
		return err
	}
	ckRec, done, err := j.restore()
	if err == nil {
		done, err = j.startTogether(done)
	}
	if err != nil || !o.writer() {
		return err
	}
	if j.log, err = trainlog.Open(filepath.Join(o.Out, LogFile), done); err != nil {
		return err
	}
	if err := j.restoreLastStep(done, ckRec); err != nil {
		return err
	}
	if err := j.logRun(done); err != nil {
		return err
	}
	steps, evals, err := trainlog.Read(filepath.Join(o.Out, LogFile))
	if err != nil {
		return err
	}
	j.evals = evals
	if err := j.openTensorBoard(done, steps); err != nil {
		return err
	}
	if err := j.syncBest(j.evals); err != nil {
		return err
	}
	j.pendingEval = j.unfinishedEvaluation(done)
	return nil
}

// checkVocab refuses, before any graph is built, a tokenizer whose ids for the training examples
// fall outside the model's vocabulary.
func checkVocab(o *Options, d *data, vocab int) error {
	seqs := func(yield func([]int) bool) {
		for _, e := range d.set.Examples {
			if !yield(e.IDs) {
				return
			}
		}
	}
	if err := tokenize.CheckVocab(o.Tokenizer, d.Tok, d.Items.Trie(), seqs, "the training examples", vocab); err != nil {
		return opterr.Wrap(opt("Tokenizer"), o.Tokenizer, err)
	}
	return nil
}

// checkEvaluation makes sure, before any training, that the evaluations after each epoch can
// run: the test split exists (EvalUsers) and the catalogue has enough distinct titles for the
// evaluation's beams.
func checkEvaluation(o *Options, d *data) error {
	field, value := opt("EvalUsers"), any(o.EvalUsers)
	switch {
	case o.Valid > 0:
		field, value = opt("Valid"), o.Valid
	case o.ValidFile != "":
		field, value = opt("ValidFile"), o.ValidFile
	case o.EvalUsers == 0:
		return nil
	}
	if o.EvalUsers > 0 {
		if _, err := tokenize.SplitPath(o.Data, evalSplit); err != nil {
			return opterr.Wrap(opt("EvalUsers"), o.EvalUsers, err)
		}
	}
	ix := decode.NewIndex(d.Items.Trie())
	if err := evaluate.CheckBeams(evaluate.DefaultBeams, ix, d.Catalogue.Path, len(d.Catalogue.IDs)); err != nil {
		return opterr.Wrap(field, value, fmt.Errorf("the evaluation's beam search: %w", err))
	}
	return nil
}

// logRun reports the training data at start-up, on stderr and as train.jsonl's run record: the
// rows, and the item ids missing from the catalogue that were dropped from them.
func (j *job) logRun(done int) error {
	rows := j.d.rows
	dropped := tokenize.DroppedIDs(rows)
	j.o.log("training on %d rows of %s; %d item ids of them are missing from the catalogue and were dropped, as the official code drops them",
		len(rows), j.d.Path, dropped)
	rec := trainlog.Run{Step: done, Split: j.d.Path, Rows: len(rows), DroppedIDs: dropped, Settings: runSettings(j.o, j.id)}
	if v := j.d.valid; v != nil {
		rec.ValidSplit, rec.ValidRows = v.path, v.rows
		j.o.log("validating after each epoch on the %d rows of %s; %s keeps the best epoch's model", v.rows, v.path, filepath.Join(j.o.Out, BestDir))
	}
	if j.o.RunFile != "" {
		rec.RunFile = j.o.RunFile
		if sum, err := hf.FileSHA256(j.o.RunFile); err == nil {
			rec.RunFileSHA256 = sum
		}
	}
	return j.log.WriteRun(rec)
}

// restore loads the checkpoint of a resumed run, or initialises the LoRA matrices of a new one
// (refusing to start over a folder that holds another run's checkpoint), and returns the steps
// done and the checkpoint's copy of its last step's log record (nil for a new run). Only rank 0
// reads the run folder; the others receive its state (startTogether).
func (j *job) restore() (*trainlog.Step, int, error) {
	ck := filepath.Join(j.o.Out, checkpointFile)
	if !j.o.writer() {
		if j.o.LoRA != nil {
			initLoRA(j.tr, j.o.Seed)
		}
		return nil, 0, nil
	}
	if j.o.Resume == "" {
		if _, err := os.Stat(ck); err == nil {
			return nil, 0, opterr.New(opt("Out"), j.o.Out, "holds a run (%s): set %s to it to continue that run, or choose another folder", checkpointFile, opt("Resume"))
		}
		if j.o.LoRA != nil {
			initLoRA(j.tr, j.o.Seed)
		}
		return nil, 0, nil
	}
	st, err := loadCheckpoint(j.o.Resume, j.o.Model, j.st, j.id)
	if err != nil {
		return nil, 0, err
	}
	j.o.log("resuming at step %d of %d from %s", st.Step, j.total, ck)
	return st.LastStep, st.Step, nil
}

// restoreLastStep writes back the log record of step done when an interruption cut it from
// train.jsonl (its line is written just before the checkpoint of that step), from the
// checkpoint's copy; where the checkpoint has none, it says that the record is lost.
func (j *job) restoreLastStep(done int, rec *trainlog.Step) error {
	if done == 0 || j.log.LastStep() >= done {
		return nil
	}
	if rec == nil || rec.Step != done {
		j.o.log("%s has no record of step %d (cut by the interruption) and the checkpoint holds no copy: that line is missing from the log", LogFile, done)
		return nil
	}
	j.o.log("%s: the record of step %d, cut by the interruption, is written again from the checkpoint", LogFile, done)
	return j.log.WriteStep(*rec)
}

// unfinishedEvaluation returns the epoch whose evaluations an interruption stopped (0: none):
// the run stands at that epoch's end and train.jsonl lacks one of them.
func (j *job) unfinishedEvaluation(done int) int {
	spe := j.d.set.StepsPerEpoch()
	if done == 0 || done%spe != 0 || len(j.missingEvaluations(done/spe)) == 0 {
		return 0
	}
	return done / spe
}

// missingEvaluations lists the splits to evaluate after epoch e that the log has no record of:
// the validation set first (it decides best/), then the test users.
func (j *job) missingEvaluations(e int) []string {
	var want []string
	if j.o.validates() {
		want = append(want, splitValid)
	}
	if j.o.EvalUsers > 0 {
		want = append(want, splitTest)
	}
	return slices.DeleteFunc(want, func(split string) bool {
		return slices.ContainsFunc(j.evals, func(ev trainlog.Eval) bool { return ev.Epoch == e && ev.Split == split })
	})
}

func (j *job) close() {
	if j.st != nil {
		j.st.obj.Close()
	}
	if j.log != nil {
		j.log.Close()
	}
	if j.tb != nil {
		j.tb.Close()
	}
	if j.tr != nil {
		j.tr.Close()
	}
	j.lock.Unlock()
}

// loop runs the evaluation an interruption left unfinished, then the remaining optimizer steps,
// until the last or until early stopping ends the run.
func (j *job) loop(ctx context.Context) (*Summary, error) {
	sum := &Summary{Steps: j.st.opt.Steps(), Total: j.total, Final: filepath.Join(j.o.Out, finalDir)}
	spe := j.d.set.StepsPerEpoch()
	if e := j.pendingEval; e > 0 {
		j.o.log("the evaluation of epoch %d was interrupted: running it first", e)
		if err := j.evaluateEpoch(ctx, e, sum.Steps, sum, false); err != nil {
			return sum, err
		}
	}
	if stop, err := j.stopEarly(sum, sum.Steps/spe); stop || err != nil { // a run that had stopped early
		return sum, err
	}
	for global := sum.Steps; global < j.total; global++ {
		stop, err := agreeStop(j.o.comm(), ctx.Err() != nil)
		if err != nil {
			return sum, err
		}
		if stop {
			if err := j.checkpoint(global); err != nil {
				return sum, err
			}
			return sum, j.interrupted(global)
		}
		stats, err := j.st.run(global)
		if err != nil {
			return sum, err
		}
		if math.IsNaN(stats.Loss) || math.IsInf(stats.Loss, 0) {
			return sum, fmt.Errorf("step %d: the loss is %v: training diverged (a lower %s?)", stats.Step, stats.Loss, opt("LR"))
		}
		if sum.FirstStep == 0 {
			sum.FirstStep, sum.FirstLoss = stats.Step, stats.Loss
		}
		sum.Steps, sum.LastLoss = stats.Step, stats.Loss
		if err := j.logStep(stats, spe); err != nil {
			return sum, err
		}
		if err := j.afterStep(ctx, stats.Step, spe, sum); err != nil {
			return sum, err
		}
		if stats.Step%spe == 0 && stats.Step < j.total {
			if stop, err := j.stopEarly(sum, stats.Step/spe); stop || err != nil {
				return sum, err
			}
		}
	}
	if j.evalStopped > 0 { // the last epoch's evaluation: no step left to stop before
		return sum, j.interrupted(sum.Steps)
	}
	return sum, nil
}

// stopEarly decides, after the evaluations of epoch e, whether early stopping ends the run
// (every rank takes rank 0's decision), and then writes the final model.
func (j *job) stopEarly(sum *Summary, e int) (bool, error) {
	if j.o.EarlyStop == 0 {
		return false, nil
	}
	why := ""
	if b := best(j.evals); j.o.writer() && b != nil && j.evalStopped == 0 {
		if n := stale(j.evals, b, e); n >= j.o.EarlyStop {
			why = fmt.Sprintf("no better validation NDCG@10 in the %s after epoch %d (%.4f)", epochs(n), b.Epoch, metric(b, selectMetric))
		}
	}
	stop, err := shareDecision(j.o.comm(), why != "")
	if err != nil || !stop {
		return false, err
	}
	sum.StoppedEarly = why
	if !j.o.writer() {
		return true, nil
	}
	j.o.log("stopping early at step %d of %d: %s", sum.Steps, j.total, why)
	if _, err := os.Stat(sum.Final); err == nil && sum.FirstStep == 0 {
		return true, nil // written when the run stopped, before this resume
	}
	return true, writeModel(sum.Final, j.o, j.tr)
}

// interrupted is the error of a run stopped by its context before step global+1.
func (j *job) interrupted(global int) error {
	during := ""
	if j.evalStopped > 0 {
		during = fmt.Sprintf(" during the evaluation of epoch %d (it runs again first)", j.evalStopped)
	}
	return fmt.Errorf("%w at step %d of %d%s: checkpoint saved; continue by setting %s to %s", ErrInterrupted, global, j.total, during, opt("Resume"), j.o.Out)
}

// afterStep writes what is due after optimizer step `done`: the epoch's adapter, its
// evaluation and a checkpoint at an epoch's end (and at the run's), a checkpoint every
// CheckpointEvery steps, the final adapter at the last step.
func (j *job) afterStep(ctx context.Context, done, spe int, sum *Summary) error {
	epochEnd, last := done%spe == 0, done == j.total
	if epochEnd || last || (j.o.CheckpointEvery > 0 && done%j.o.CheckpointEvery == 0) {
		if err := j.checkInSync(done); err != nil {
			return err
		}
	}
	if !j.o.writer() {
		return nil
	}
	if epochEnd {
		if err := writeModel(epochDir(j.o.Out, done/spe), j.o, j.tr); err != nil {
			return err
		}
	}
	if last {
		if err := writeModel(sum.Final, j.o, j.tr); err != nil {
			return err
		}
	}
	if epochEnd || last || (j.o.CheckpointEvery > 0 && done%j.o.CheckpointEvery == 0) {
		if err := saveCheckpoint(j.o.Out, j.st, done, j.id, j.lastRec); err != nil {
			return err
		}
	}
	if epochEnd { // after the checkpoint: a failed evaluation loses no training
		return j.evaluateEpoch(ctx, done/spe, done, sum, true)
	}
	return nil
}

func epochs(n int) string {
	if n == 1 {
		return "epoch"
	}
	return fmt.Sprintf("%d epochs", n)
}

// evaluateEpoch runs the evaluations after epoch e (at step) that the log lacks: the validation
// set (then best/ follows it) and the test users. fresh discards the journal of an interrupted
// evaluation rather than continuing it. An interrupt stops it at once (its journal keeps the
// finished batches) and is not an error here: the loop's agreement on stopping, which every
// rank takes part in, ends the run.
func (j *job) evaluateEpoch(ctx context.Context, e, step int, sum *Summary, fresh bool) error {
	for _, split := range j.missingEvaluations(e) {
		ev, err := j.evaluate(ctx, epochDir(j.o.Out, e), split, e, step, fresh)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			j.evalStopped = e
			return nil
		}
		if err != nil {
			return err
		}
		j.evals = append(j.evals, ev)
		sum.Evals = append(sum.Evals, ev)
		if split != splitValid {
			continue
		}
		if err := j.syncBest(j.evals); err != nil {
			return err
		}
		b := best(j.evals)
		j.o.log("epoch %d: validation NDCG@10 %.4f, HR@10 %.4f on %d rows; best: epoch %d (%.4f)",
			e, metric(&ev, selectMetric), metric(&ev, "hr@10"), ev.Users, b.Epoch, metric(b, selectMetric))
	}
	return nil
}

// checkpoint saves the run after step done, once the ranks are known to agree (rank 0 writes).
func (j *job) checkpoint(done int) error {
	if err := j.checkInSync(done); err != nil {
		return err
	}
	if !j.o.writer() {
		return nil
	}
	return saveCheckpoint(j.o.Out, j.st, done, j.id, j.lastRec)
}

// logStep appends the step's line to train.jsonl and reports progress.
func (j *job) logStep(s StepStats, spe int) error {
	if !j.o.writer() {
		return nil
	}
	rec := trainlog.Step{
		Step: s.Step, Epoch: float64(s.Step) / float64(spe), Loss: s.Loss, LR: s.LR, GradNorm: s.GradNorm,
		Tokens: s.Tokens, TokensPerS: float64(s.Tokens) / s.Wall.Seconds(), StepMS: float64(s.Wall.Microseconds()) / 1e3,
		PrunedShare: float64(s.Violations) / float64(max(s.Positions, 1)),
		MeanWeight:  s.RawWeights / float64(max(s.Positions, 1)), ElapsedS: time.Since(j.start).Seconds(),
	}
	if err := j.log.WriteStep(rec); err != nil {
		return err
	}
	if err := j.stepEvent(rec); err != nil {
		return err
	}
	j.lastRec = &rec
	if j.o.Progress != nil {
		j.o.Progress(Progress{Step: s.Step, Total: j.total, Loss: s.Loss, TokensPerS: rec.TokensPerS})
	}
	return nil
}

// evaluate runs `bear eval` with the model written after epoch e on the validation set or the
// first EvalUsers test users, with the constraint the official inference uses for the run's
// loss, and logs NDCG and HR. fresh discards the journal of an earlier, interrupted evaluation
// of the same epoch.
func (j *job) evaluate(ctx context.Context, model, split string, e, step int, fresh bool) (trainlog.Eval, error) {
	eo := evaluate.Options{
		Model: j.o.Model, Adapter: model, Tokenizer: j.o.Tokenizer, Data: j.o.Data, Dataset: j.d.Name,
		Split: evalSplit, Limit: j.o.EvalUsers, KVCache: true, Runtime: j.o.Runtime,
		Out: filepath.Join(j.o.Out, fmt.Sprintf("eval-epoch-%d", e)), Fresh: fresh,
		Mode: evaluate.OfficialMode(j.o.Loss.Kind.String()), Log: j.o.Log,
	}
	if split == splitValid {
		eo.Split, eo.Limit, eo.Out = j.d.valid.path, 0, filepath.Join(j.o.Out, fmt.Sprintf("valid-epoch-%d", e))
	}
	if j.o.Full {
		eo.Model = model
		if j.o.LoRA == nil {
			eo.Adapter = ""
		}
	}
	if j.o.EvalProgress != nil {
		eo.Progress = func(done, total int) { j.o.EvalProgress(split, e, done, total) }
	}
	t0 := time.Now()
	m, err := evaluate.Run(ctx, eo)
	if err != nil {
		return trainlog.Eval{}, fmt.Errorf("evaluation (%s) after epoch %d: %w", split, e, err)
	}
	ev := trainlog.Eval{Step: step, Epoch: e, Split: split, Users: m.Users, Metrics: m.Headline(), ElapsedS: time.Since(t0).Seconds()}
	if split == splitTest {
		j.o.log("epoch %d: NDCG@10 %.4f, HR@10 %.4f on %d test users", e, m.Headline()["NDCG@10"], m.Headline()["HR@10"], m.Users)
	}
	if err := j.log.WriteEval(ev); err != nil {
		return ev, err
	}
	return ev, j.evalEvent(ev)
}

// Prepared is a prepared run that performs optimizer steps on demand, with no outputs beyond the
// run folder's log: what `bear bench train` times.
type Prepared struct{ j *job }

// Prepare validates o, reads the data and builds the graphs, as Run does before its first step.
func Prepare(o Options) (*Prepared, error) {
	j, err := newJob(&o)
	if err != nil {
		return nil, err
	}
	return &Prepared{j}, nil
}

// Step performs optimizer step number global (from 0): data, forward, loss, backward,
// clipping and AdamW.
func (s *Prepared) Step(global int) (StepStats, error) { return s.j.st.run(global) }

// Set is the run's tokenised training set (what each step's micro-batches are cut from).
func (s *Prepared) Set() *trainset.Set { return s.j.d.set }

// StepsPerEpoch is the number of optimizer steps of one epoch.
func (s *Prepared) StepsPerEpoch() int { return s.j.d.set.StepsPerEpoch() }

// TrainableValues is the number of trainable values (what each step's all-reduce carries).
func (s *Prepared) TrainableValues() int {
	n := 0
	for _, p := range s.j.st.params {
		n += len(p.Value)
	}
	return n
}

// Close releases the sessions.
func (s *Prepared) Close() { s.j.close() }
