package optim

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// AdamWConfig holds torch.optim.AdamW's hyper-parameters other than the learning rate,
// which Step takes so that a schedule can change it every step.
type AdamWConfig struct {
	Beta1, Beta2 float64 // betas: decay rates of the first and second moment
	Eps          float64 // added to the bias-corrected root of the second moment
	WeightDecay  float64 // decoupled: values are multiplied by 1 - lr*WeightDecay first
}

// DefaultAdamW is the HF Trainer's `adamw_torch` with TrainingArguments' defaults (adam_beta1
// 0.9, adam_beta2 0.999, adam_epsilon 1e-8, weight_decay 0), which the official BEAR runs
// keep. torch's own AdamW default weight decay is 0.01; the Trainer passes 0.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0}
}

// Validate applies torch.optim.AdamW's constructor checks: betas in [0, 1), eps and weight
// decay >= 0 (NaN fails every one of them).
func (c AdamWConfig) Validate() error {
	if !(c.Beta1 >= 0 && c.Beta1 < 1) {
		return fmt.Errorf("AdamW beta1 %v is not in [0, 1)", c.Beta1)
	}
	if !(c.Beta2 >= 0 && c.Beta2 < 1) {
		return fmt.Errorf("AdamW beta2 %v is not in [0, 1)", c.Beta2)
	}
	if !(c.Eps >= 0) {
		return fmt.Errorf("AdamW eps %v is negative", c.Eps)
	}
	if !(c.WeightDecay >= 0) {
		return fmt.Errorf("AdamW weight decay %v is negative", c.WeightDecay)
	}
	return nil
}

// AdamW is torch.optim.AdamW (single-tensor path) over a fixed list of float32 parameters.
// It keeps the Value and Grad slices it was given: write each step's gradients into those
// Grad slices in place. The moments are float32, like torch's state for float32 parameters.
type AdamW struct {
	cfg      AdamWConfig
	params   []Param
	expAvg   [][]float32 // first moments, one per parameter (torch's state["exp_avg"])
	expAvgSq [][]float32 // second moments (state["exp_avg_sq"])
	steps    int         // completed steps (state["step"], the same for every parameter here)
	spans    []span      // the work of one step, cut into pieces for the goroutines
}

// spanSize is the most values one goroutine updates at a time: large enough that the
// hand-over costs nothing (about 0.3 ms of work), small enough to share a 1M-value step.
const spanSize = 1 << 15

// span is the values [lo, hi) of parameter param.
type span struct{ param, lo, hi int }

func cutSpans(params []Param) []span {
	var spans []span
	for i, p := range params {
		for lo := 0; lo < len(p.Value); lo += spanSize {
			spans = append(spans, span{param: i, lo: lo, hi: min(lo+spanSize, len(p.Value))})
		}
	}
	return spans
}

// NewAdamW validates cfg and params (see Param) and returns an optimizer with zero moments
// at step 0.
func NewAdamW(cfg AdamWConfig, params []Param) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new AdamW: %w", err)
	}
	if err := validateParams(params); err != nil {
		return nil, fmt.Errorf("new AdamW: %w", err)
	}
	o := &AdamW{cfg: cfg, params: append([]Param(nil), params...), spans: cutSpans(params)}
	o.expAvg = make([][]float32, len(params))
	o.expAvgSq = make([][]float32, len(params))
	for i, p := range params {
		o.expAvg[i] = make([]float32, len(p.Value))
		o.expAvgSq[i] = make([]float32, len(p.Value))
	}
	return o, nil
}

// Config returns the hyper-parameters the optimizer was built with.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Steps returns the number of completed steps, counting those restored by SetState.
func (o *AdamW) Steps() int { return o.steps }

// stepScalars are the per-step constants, computed in float64 as torch computes them in
// Python and rounded once to float32 where torch's kernels take them as float32 scalars.
type stepScalars struct {
	decay                float32 // 1 - lr*weight_decay
	beta1, oneMinusBeta1 float32
	beta2, oneMinusBeta2 float32
	biasCorrection2Sqrt  float32 // sqrt(1 - beta2^t)
	eps                  float32
	negStepSize          float32 // -lr / (1 - beta1^t)
}

func (o *AdamW) scalars(lr float64) stepScalars {
	t := float64(o.steps)
	bc1 := 1 - math.Pow(o.cfg.Beta1, t)
	bc2 := 1 - math.Pow(o.cfg.Beta2, t)
	return stepScalars{
		decay:               float32(1 - float64(lr*o.cfg.WeightDecay)), // no FMA: Python rounds the product
		beta1:               float32(o.cfg.Beta1),
		oneMinusBeta1:       float32(1 - o.cfg.Beta1),
		beta2:               float32(o.cfg.Beta2),
		oneMinusBeta2:       float32(1 - o.cfg.Beta2),
		biasCorrection2Sqrt: float32(math.Sqrt(bc2)),
		eps:                 float32(o.cfg.Eps),
		negStepSize:         float32(-(lr / bc1)),
	}
}

// Step applies one AdamW update with learning rate lr to every parameter from its Grad,
// in torch's order: step count, decoupled weight decay, moments, bias-corrected update.
// lr is used as given (torch does not check it at step time either). The update is
// element-wise, so it is shared between GOMAXPROCS goroutines without changing any bit.
func (o *AdamW) Step(lr float64) {
	o.steps++
	k := o.scalars(lr)
	workers := min(runtime.GOMAXPROCS(0), len(o.spans))
	if workers <= 1 {
		for _, sp := range o.spans {
			o.updateSpan(k, sp)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := int(next.Add(1)) - 1; j < len(o.spans); j = int(next.Add(1)) - 1 {
				o.updateSpan(k, o.spans[j])
			}
		})
	}
	wg.Wait()
}

func (o *AdamW) updateSpan(k stepScalars, sp span) {
	p := o.params[sp.param]
	value := p.Value[sp.lo:sp.hi]
	// Multiplying by exactly 1 (weight decay 0) changes no bit, so it is skipped.
	if k.decay != 1 {
		scale(k.decay, value)
	}
	updateTensor(k, value, p.Grad[sp.lo:sp.hi], o.expAvg[sp.param][sp.lo:sp.hi], o.expAvgSq[sp.param][sp.lo:sp.hi])
}

// Why fma32: measured on 1M random values with Debian's torch, emulating the FMA reproduces
// torch's moments exactly, while rounding the product separately (what gonum's Saxpy does)
// agrees on only 81% of first moments and 98% of second moments; and `sqrt(v) /
// bias_correction2_sqrt` is a true float32 division (100%), not a multiplication by the
// reciprocal (85%). Differences from torch that change no value: the step count is one int
// for the optimizer instead of a float32 tensor per parameter (torch's float32 count would
// stop at 2^24 steps); a weight-decay factor of exactly 1 is skipped. Newer torch releases
// choose the foreach path by default when every parameter is on CUDA
// (torch/optim/optimizer.py, _default_to_fused_or_foreach), so a GPU run of the official
// code most likely used it. The Trainer decays only parameters outside LayerNorm modules whose
// names do not contain "bias" (Trainer.get_decay_parameter_names): LoRA matrices are all
// decayed under that rule, and so is every Param here.

// updateTensor is the element-wise part of torch 1.13's _single_tensor_adamw with the
// rounding of its CPU kernels: `exp_avg.mul_(b1).add_(g, alpha=1-b1)` and
// `exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)` are one float32 multiply followed by a
// fused multiply-add (the AVX2 kernels use FMA), `denom = sqrt(v)/bc2_sqrt + eps` and
// `param.addcdiv_(m, denom, value=-step_size)` = param + (-step_size*m)/denom are rounded
// after every operation. The explicit float32 conversions keep the Go compiler from fusing
// anything torch does not fuse.
func updateTensor(k stepScalars, value, grad, expAvg, expAvgSq []float32) {
	grad, expAvg, expAvgSq = grad[:len(value)], expAvg[:len(value)], expAvgSq[:len(value)]
	for i, g := range grad {
		m, ok := fma32Fast(g, k.oneMinusBeta1, float32(expAvg[i]*k.beta1))
		if !ok {
			m = fma32(g, k.oneMinusBeta1, float32(expAvg[i]*k.beta1))
		}
		scaledG := float32(k.oneMinusBeta2 * g)
		v, ok := fma32Fast(scaledG, g, float32(expAvgSq[i]*k.beta2))
		if !ok {
			v = fma32(scaledG, g, float32(expAvgSq[i]*k.beta2))
		}
		denom := float32(sqrt32(v)/k.biasCorrection2Sqrt) + k.eps
		value[i] = value[i] + float32(float32(k.negStepSize*m)/denom)
		expAvg[i], expAvgSq[i] = m, v
	}
}

// fma32Fast is fma32's common case, small enough to inline into the loop (a call per
// element made the step three times slower). The product a*b is exact in float64 (24+24
// significant bits), so the float64 sum s is the exact sum rounded once, and rounding s to
// float32 gives the correctly rounded result unless s landed exactly on a float32 tie (a
// midpoint between two float32 values): no float64 lies strictly between the exact sum
// and s, so both are on the same side of every other midpoint. The test is on s's low 29
// bits and fails for about one sum in 2^29; it also fails in float32's subnormal range,
// where the float32 grid is coarser. ok is false in those cases: call fma32.
func fma32Fast(a, b, c float32) (r float32, ok bool) {
	s := float64(a)*float64(b) + float64(c)
	bits := math.Float64bits(s)
	return float32(s), bits&(1<<29-1) != 1<<28 && bits&(0x7ff<<52) >= (1023-126)<<52
}

// fma32 returns a*b + c rounded once to float32, what a single-precision FMA instruction
// computes. With p = a*b (exact) and s = p + c rounded to float64, TwoSum gives the exact
// error e, and s is replaced by the round-to-odd value of the exact sum (truncation toward
// zero, i.e. one unit down where the exact sum lies below |s|, with the last bit set when
// inexact); rounding that to float32 is correct (53 >= 24 + 2 bits), where rounding the
// plain s would round twice and be one unit off at ties (TestFMA32 has such cases).
func fma32(a, b, c float32) float32 {
	p, cd := float64(a)*float64(b), float64(c)
	s := p + cd
	bv := s - p
	e := (p - (s - bv)) + (cd - bv)
	if e-e != 0 { // e is NaN: an operand was infinite or NaN, and s is the IEEE result
		return float32(s)
	}
	bits, eb := math.Float64bits(s), math.Float64bits(e)
	inexact := (eb<<1 | -(eb << 1)) >> 63 // 1 unless e is +-0
	below := (eb ^ bits) >> 63 & inexact  // e and s differ in sign: |exact| < |s|
	return float32(math.Float64frombits((bits - below) | inexact))
}

// sqrt32 is a correctly rounded float32 square root (rounding the float64 root once more
// is exact for square roots: 53 >= 2*24+2).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
