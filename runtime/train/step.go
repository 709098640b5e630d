package train

import (
	"fmt"
	"time"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainset"
	"gonum.org/v1/gonum/blas/blas32"
)

// maxGradNorm is the official run's max_grad_norm (HF Trainer default).
const maxGradNorm = 1.0

// StepStats describe one optimizer step.
type StepStats struct {
	Step       int     // optimizer steps done in the run, this one included
	Loss       float64 // mean of the norm groups' losses (what the official trainer logs)
	LR         float64 // learning rate this step used
	GradNorm   float64 // global gradient norm before clipping
	Tokens     int     // real tokens of the step's sequences
	Positions  int     // supervised positions
	Violations int     // positions whose target is outside the top-K allowed tokens
	RawWeights float64 // sum of BEAR's raw weights w_t over the positions (1 each for LML, MSL)
	Wall, ORT  time.Duration
	Comm       time.Duration // in the ranks' all-reduce (0 in one process)
}

// stepper runs optimizer steps: forward, loss and backward of every micro-batch, the
// accumulation of each norm group's gradient divided once by its normaliser, clipping and AdamW.
type stepper struct {
	o       *Options
	tr      *ortrun.Trainer[float32]
	obj     *lossgrad.Objective[float32]
	set     *trainset.Set
	batcher *trainset.Batcher
	params  []optim.Param
	group   [][]float32 // a norm group's un-normalised gradient, per param
	opt     *optim.AdamW
	sched   optim.LinearWarmup

	// scratch reused across micro-batches
	slices        lossgrad.LogitSlices[float32]
	index, subset []int64 // padded logit slots and vocabulary subset
	grad          []float32
	cot           []float32
	diag          []lossgrad.Position
	flat          []float32 // the gradients of every param, end to end, for the all-reduce
}

func newStepper(o *Options, tr *ortrun.Trainer[float32], set *trainset.Set, total int) (*stepper, error) {
	obj, err := newObjective(o)
	if err != nil {
		return nil, err
	}
	s := &stepper{o: o, tr: tr, obj: obj, set: set, batcher: set.NewBatcher(), params: params(tr),
		sched: optim.LinearWarmup{Warmup: o.Warmup, Total: total}}
	if err = s.sched.Validate(); err == nil {
		s.opt, err = optim.NewAdamW(optim.DefaultAdamW(), s.params)
	}
	if err != nil {
		obj.Close()
		return nil, err
	}
	for _, p := range s.params {
		s.group = append(s.group, make([]float32, len(p.Value)))
	}
	return s, nil
}

// run performs optimizer step number global (from 0) of the run.
func (s *stepper) run(global int) (StepStats, error) {
	t0, ort0 := time.Now(), ortrun.ORTTime()
	spe := s.set.StepsPerEpoch()
	st, err := s.batcher.Step(global/spe, global%spe)
	if err != nil {
		return StepStats{}, err
	}
	for _, p := range s.params {
		clear(p.Grad)
	}
	stats := StepStats{Step: global + 1, Tokens: st.Tokens, Positions: st.Positions}
	micro := 0
	for gi, g := range st.Groups {
		if !s.ownsGroup(gi) { // another rank's: its micro-batches keep their indices in the step
			micro += len(g.Micro)
			continue
		}
		loss, err := s.groupStep(g, len(st.Groups), global, &micro, &stats)
		if err != nil {
			return StepStats{}, err
		}
		stats.Loss += loss / float64(len(st.Groups))
	}
	if err := s.reduce(&stats); err != nil {
		return StepStats{}, err
	}
	stats.GradNorm = optim.ClipGradNorm(s.params, maxGradNorm)
	stats.LR = s.sched.LR(s.o.LR, global)
	s.opt.Step(stats.LR)
	stats.Wall, stats.ORT = time.Since(t0), ortrun.ORTTime()-ort0
	return stats, nil
}

// groupStep accumulates one norm group into the step's gradient with weight 1/(normaliser·G),
// the G groups being averaged as DDP averages its devices, and returns the group's loss. A
// group's normaliser (its positions, or its BEAR weights) is known only once all its
// micro-batches ran; backward is linear in the cotangent, so the un-normalised gradients add up
// and the sum is divided once.
func (s *stepper) groupStep(g trainset.Group, groups, global int, micro *int, stats *StepStats) (float64, error) {
	single := len(g.Micro) == 1 // add the one gradient straight into the step's, scaled
	var loss, norm float64
	for _, mb := range g.Micro {
		r, err := s.forwardLoss(mb, dropoutSeed(s.o.Seed, global, *micro))
		*micro++
		if err != nil {
			return 0, fmt.Errorf("step %d, micro-batch of rows %v: %w", global+1, mb.Rows, err)
		}
		loss += r.Loss
		norm += s.normaliser(r)
		stats.Violations += r.Violations
		for i := range r.Positions {
			stats.RawWeights += s.diag[i].RawWeight
		}
		grads, err := s.tr.Backward(s.cot)
		if err != nil {
			return 0, fmt.Errorf("step %d: %w", global+1, err)
		}
		switch {
		case single:
			s.axpy(float32(1/(s.finish(norm)*float64(groups))), grads, nil)
		case mb == g.Micro[0]:
			s.copyInto(grads)
		default:
			s.axpy(1, grads, s.group)
		}
	}
	norm = s.finish(norm)
	if !single {
		scale := float32(1 / (norm * float64(groups)))
		for i, p := range s.params {
			blas32.Axpy(scale, vec(s.group[i]), vec(p.Grad))
		}
	}
	return loss / norm, nil
}

// normaliser is a micro-batch's share of its group's normaliser: its positions for LML and MSL,
// the sum of its BEAR weights over positions with more than one allowed token.
func (s *stepper) normaliser(r lossgrad.Result) float64 {
	if s.o.Loss.Kind == lossgrad.BEAR {
		return r.WeightSum
	}
	return float64(r.Positions)
}

// finish completes a group's normaliser: BEAR adds 1e-8 once, as the official code does.
func (s *stepper) finish(norm float64) float64 {
	if s.o.Loss.Kind == lossgrad.BEAR {
		return norm + lossgrad.WeightEps
	}
	return norm
}

// axpy adds alpha·grads into dst (per param; nil: the params' step gradients).
func (s *stepper) axpy(alpha float32, grads map[string][]float32, dst [][]float32) {
	for i, p := range s.params {
		y := p.Grad
		if dst != nil {
			y = dst[i]
		}
		blas32.Axpy(alpha, vec(grads[p.Name]), vec(y))
	}
}

// copyInto starts a group's accumulator with its first micro-batch's gradients.
func (s *stepper) copyInto(grads map[string][]float32) {
	for i, p := range s.params {
		blas32.Copy(vec(grads[p.Name]), vec(s.group[i]))
	}
}

func vec(x []float32) blas32.Vector { return blas32.Vector{N: len(x), Inc: 1, Data: x} }

// dropoutSeed keys the LoRA dropout masks of one micro-batch: a function of the run's seed, the
// optimizer step and the micro-batch's index in it, so a resumed run draws the same masks.
func dropoutSeed(seed uint64, global, micro int) int64 {
	x := seed ^ uint64(global)*0x9E3779B97F4A7C15 ^ uint64(micro)*0xC2B2AE3D27D4EB4F
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return int64(x >> 2)
}
