package lossgrad

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Kind selects the loss.
type Kind int

const (
	// LML is plain cross-entropy over the whole vocabulary, mean over positions.
	LML Kind = iota + 1
	// MSL is cross-entropy over the allowed (trie-valid) tokens, mean over positions.
	MSL
	// BEAR is MSL reweighted per position by the detached beam-search-aware weight.
	BEAR
)

// String returns the lower-case name used in case files ("lml", "msl", "bear").
func (k Kind) String() string {
	switch k {
	case LML:
		return "lml"
	case MSL:
		return "msl"
	case BEAR:
		return "bear"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind parses "lml", "msl" or "bear" (case-insensitive).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "lml":
		return LML, nil
	case "msl":
		return MSL, nil
	case "bear":
		return BEAR, nil
	}
	return 0, fmt.Errorf("unknown loss %q (want lml, msl or bear)", s)
}

// WeightEps is added to the sum of BEAR weights before normalising, as in the official code.
const WeightEps = 1e-8

// Config holds the loss hyper-parameters.
type Config struct {
	Kind   Kind
	Tau    float64 // softmax temperature: logits are divided by Tau (> 0)
	Xi     float64 // BEAR: temperature of the sigmoid on the pruning margin (> 0)
	Lambda float64 // BEAR: weight of the sigmoid term (>= 0)
	K      int     // beam width: beta_t is the K-th largest allowed probability (>= 1)
	// Workers is the number of goroutines that share the positions of one batch;
	// 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Unnormalised leaves the batch normaliser out of the coefficients: c_i = 1 for LML and
	// MSL, c_i = w_i for BEAR. Loss and gradient are then sums that add up over the
	// micro-batches of one norm group; the trainer divides them once by the group's
	// normaliser (the sum of Result.Positions, or of Result.WeightSum plus WeightEps).
	Unnormalised bool
}

// DefaultConfig returns the official defaults of the Toy run (tau 1, xi 2.75,
// lambda 0.25) with beam width 10.
func DefaultConfig(kind Kind) Config {
	return Config{Kind: kind, Tau: 1, Xi: 2.75, Lambda: 0.25, K: 10}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Kind != LML && c.Kind != MSL && c.Kind != BEAR:
		return fmt.Errorf("lossgrad.Config.Kind %d: unknown loss", int(c.Kind))
	case !(c.Tau > 0) || math.IsInf(c.Tau, 0):
		return fmt.Errorf("lossgrad.Config.Tau %v: want a finite temperature > 0", c.Tau)
	case c.K < 1:
		return fmt.Errorf("lossgrad.Config.K %d: want a beam width of at least 1", c.K)
	case c.Workers < 0:
		return fmt.Errorf("lossgrad.Config.Workers %d: want 0 or more", c.Workers)
	}
	if c.Kind == BEAR {
		if !(c.Xi > 0) || math.IsInf(c.Xi, 0) {
			return fmt.Errorf("lossgrad.Config.Xi %v: want a finite temperature > 0", c.Xi)
		}
		if !(c.Lambda >= 0) || math.IsInf(c.Lambda, 0) {
			return fmt.Errorf("lossgrad.Config.Lambda %v: want a finite weight >= 0", c.Lambda)
		}
	}
	return nil
}

// Float is the element type of logits and gradients.
type Float interface{ ~float32 | ~float64 }

// LogitSlices holds the supervised positions of one micro-batch in a flat layout: position
// i owns Logits[Offsets[i]:Offsets[i+1]] (the logits of its allowed tokens, or of the whole
// vocabulary for LML) and its positive token is the element Targets[i] of that slice.
// Offsets has len(Targets)+1 entries, starts at 0 and ends at len(Logits).
type LogitSlices[F Float] struct {
	Logits  []F
	Offsets []int
	Targets []int
}

// Position holds the per-position results and diagnostics. Log-probabilities are of the
// tempered softmax over the position's logits (logits / Tau).
type Position struct {
	Allowed int     // number of logits at this position
	LogP    float64 // log p_t of the positive token
	LogBeta float64 // log beta_t: K-th largest probability, or the smallest non-zero one when Allowed < K
	Margin  float64 // pruning margin LogBeta - LogP (> 0: the positive is pruned by a width-K beam)
	InTopK  bool    // the positive ranks inside the top K (p_t >= beta_t, ties count as inside)
	// Weight is the coefficient of -log p_t in the batch loss: 1/N for LML and MSL; for BEAR
	// w_t/(sum w + 1e-8) where more than one token is allowed, else the raw w_t (whose term is 0).
	Weight float64
	// RawWeight is BEAR's w_t = 1 + lambda*sigmoid((log p_t - log beta_t)/xi) (1 for LML, MSL).
	RawWeight float64
	NLL       float64 // -log p_t (0 when a single token is allowed)

	sum float64 // sum of exp((z - max)/tau), kept between the phases
}

// Result summarises one batch.
type Result struct {
	Loss       float64 // the batch loss as the official compute_loss defines it
	Positions  int     // supervised positions N
	Multi      int     // positions with more than one allowed token
	Violations int     // positions whose positive is outside the top K
	// ViolationShare is Violations/Positions (0 for an empty batch).
	ViolationShare float64
	// WeightSum is BEAR's sum of raw weights over the positions with more than one allowed
	// token (the normaliser, before adding 1e-8); 0 for LML and MSL.
	WeightSum float64
	MeanNLL   float64 // mean of -log p_t over all positions
}

// Objective computes one loss and its gradient for successive micro-batches. It keeps its
// scratch space and, when Workers > 1, a small pool of goroutines, so that Compute does not
// allocate once warm. An Objective is not safe for concurrent use; Close releases its
// goroutines.
type Objective[F Float] struct {
	cfg     Config
	workers int
	invTau  float64

	scratch []Position

	// state of the call in progress, read by the pool
	b     LogitSlices[F]
	grad  []F
	pos   []Position
	coef  float64 // LML/MSL: 1/N; BEAR: 1/(sum w + eps)
	next  atomic.Int64
	errAt atomic.Int64 // first position with a non-finite result, +1 (0: none)

	startOnce sync.Once
	closeOnce sync.Once
	work      chan int
	wg        sync.WaitGroup
}

// NewObjective returns an objective for cfg.
func NewObjective[F Float](cfg Config) (*Objective[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := cfg.Workers
	if w == 0 {
		w = runtime.GOMAXPROCS(0)
	}
	return &Objective[F]{cfg: cfg, workers: w, invTau: 1 / cfg.Tau}, nil
}

// Config returns the objective's configuration.
func (e *Objective[F]) Config() Config { return e.cfg }

// Close stops the objective's goroutines. The objective must not be used afterwards.
func (e *Objective[F]) Close() {
	e.closeOnce.Do(func() {
		if e.work != nil {
			close(e.work)
		}
	})
}

// computeOnce is a one-shot Compute with a temporary objective.
func computeOnce[F Float](cfg Config, b LogitSlices[F], grad []F, diag []Position) (Result, error) {
	e, err := NewObjective[F](cfg)
	if err != nil {
		return Result{}, err
	}
	defer e.Close()
	return e.Compute(b, grad, diag)
}

// Validate checks the layout of b.
func (b LogitSlices[F]) Validate() error {
	n := len(b.Targets)
	if len(b.Offsets) != n+1 {
		return fmt.Errorf("offsets: have %d entries, want len(targets)+1 = %d", len(b.Offsets), n+1)
	}
	if b.Offsets[0] != 0 {
		return fmt.Errorf("offsets[0] is %d, want 0", b.Offsets[0])
	}
	if b.Offsets[n] != len(b.Logits) {
		return fmt.Errorf("offsets[%d] is %d, want len(logits) = %d", n, b.Offsets[n], len(b.Logits))
	}
	for i := 0; i < n; i++ {
		size := b.Offsets[i+1] - b.Offsets[i]
		if size < 1 {
			return fmt.Errorf("position %d: %d logits (offsets %d..%d), want at least 1", i, size, b.Offsets[i], b.Offsets[i+1])
		}
		if t := b.Targets[i]; t < 0 || t >= size {
			return fmt.Errorf("position %d: target %d out of range [0,%d)", i, t, size)
		}
	}
	return nil
}

// errNonFinite is wrapped by Compute's error when a position's loss is not finite
// (NaN or +Inf logits, or a positive token whose logit is -Inf).
var errNonFinite = errors.New("non-finite loss")

// Conventions of the official trainers (train_lml.py, train_msl.py, train_bear.py, each in
// compute_loss), transcribed in tools/reference/lossref.py, which writes the goldens:
//
//   - Positions labelled -100 (the prompt, and padding: the collator pads the trie mask with
//     all-allowed rows on the left) are removed before anything else: they count neither in
//     MSL's or LML's mean nor in BEAR's weight normalisation.
//   - MSL's mean is over all supervised positions, including those with a single allowed
//     token, whose loss is 0 (so they dilute the mean).
//   - BEAR normalises only the weights of positions with more than one allowed token, by their
//     sum plus WeightEps (so they sum to slightly less than 1); single-token positions keep
//     their raw weight, but their term -log 1 and its gradient are 0. The loss is a sum.
//   - beta is the K-th largest probability counting ties (torch.topk); the official code
//     detects "fewer than K allowed" as a K-th probability equal to 0 and then takes the
//     smallest probability over the allowed tokens.
//   - The batch of the means and of BEAR's normalisation is one device's micro-batch: the
//     official run launches train_*.py with `accelerate launch` on 8 GPUs, 128 sequences per
//     step = 8 processes x 16 sequences, gradient_accumulation_steps 1, and DDP averages the
//     8 gradients. A single device reproduces it with micro-batches of 16 sequences, one
//     Compute each, and the mean (not the sum) of their 8 gradients.
//   - Temperature divides the logits before the softmax for all three losses, so the gradient
//     carries 1/tau. K is 10 in the official trainer; Xi and Lambda are its topk_tau and
//     topk_weight.
//
// Deviations, only where the official float arithmetic leaves the real numbers (the goldens
// mark such cases "official_nonfinite" and hold the algebraically identical values):
//
//   - LML and MSL: the official code computes log(sum(exp(z/tau))) without subtracting the
//     maximum, so it returns inf/NaN once z/tau exceeds about 709 in float64 (88 in float32),
//     or once every allowed z/tau is below about -745; LML's -log(exp(z_t/tau)) also
//     underflows. Here the maximum is subtracted and the result stays finite.
//   - BEAR: the official code takes -log of a softmax probability, +inf when p_t underflows to
//     0, and its "K-th probability == 0" test also fires when K or more tokens are allowed but
//     the K-th probability underflows; its replacement, the smallest allowed probability, is
//     then 0 too, so log beta = -inf and w = 1 + lambda. Here everything is in log space: beta
//     is the smallest allowed probability exactly when fewer than K tokens are allowed, and w
//     comes from finite log-probabilities, so it differs from the official value only where
//     the official probabilities underflow.
//   - A position with one allowed token has loss and gradient exactly 0; the official MSL
//     computes -z/tau + log(exp(z/tau)), which can leave a rounding residue.
//   - An empty batch gives loss 0 (the official mean would be NaN).
//   - The official LML softmax runs over the resized vocabulary, which includes the added
//     <pad> token (id 128256, 128 257 logits); which slice to hand in is the trainer's choice.

// Compute computes the loss of the micro-batch b holds, writes dL/dlogits into grad (same
// layout as b.Logits, len(grad) == len(b.Logits)) and, when diag is not nil (len(diag) >=
// positions), the per-position diagnostics. Accumulation is in float64 whatever F is.
func (e *Objective[F]) Compute(b LogitSlices[F], grad []F, diag []Position) (Result, error) {
	if err := b.Validate(); err != nil {
		return Result{}, err
	}
	if len(grad) != len(b.Logits) {
		return Result{}, fmt.Errorf("grad has %d elements, want len(logits) = %d", len(grad), len(b.Logits))
	}
	n := len(b.Targets)
	if diag != nil && len(diag) < n {
		return Result{}, fmt.Errorf("diag has %d entries, want at least %d positions", len(diag), n)
	}
	if n == 0 {
		return Result{}, nil
	}
	pos := diag
	if pos == nil {
		if cap(e.scratch) < n {
			e.scratch = make([]Position, n)
		}
		pos = e.scratch[:n]
	}
	pos = pos[:n]
	e.b, e.grad, e.pos = b, grad, pos
	defer func() { e.b, e.grad, e.pos = LogitSlices[F]{}, nil, nil }()
	e.errAt.Store(0)

	if e.cfg.Kind == BEAR {
		e.run(1) // statistics and exps; weights
		var s float64
		for i := range pos {
			if pos[i].Allowed > 1 {
				s += pos[i].RawWeight
			}
		}
		if at := e.errAt.Load(); at != 0 {
			return Result{}, fmt.Errorf("position %d: %w", at-1, errNonFinite)
		}
		e.coef = 1 / (s + WeightEps)
		if e.cfg.Unnormalised {
			e.coef = 1
		}
		e.run(2) // scale gradients
	} else {
		e.coef = 1 / float64(n)
		if e.cfg.Unnormalised {
			e.coef = 1
		}
		e.run(0) // everything in one pass per position
		if at := e.errAt.Load(); at != 0 {
			return Result{}, fmt.Errorf("position %d: %w", at-1, errNonFinite)
		}
	}

	var r Result
	r.Positions = n
	var sumNLL float64
	for i := range pos {
		p := &pos[i]
		r.Loss += p.Weight * p.NLL
		sumNLL += p.NLL
		if p.Allowed > 1 {
			r.Multi++
			if e.cfg.Kind == BEAR {
				r.WeightSum += p.RawWeight
			}
		}
		if !p.InTopK {
			r.Violations++
		}
	}
	r.ViolationShare = float64(r.Violations) / float64(n)
	r.MeanNLL = sumNLL / float64(n)
	return r, nil
}

// run executes one phase over all positions, sharing them dynamically between the caller
// and workers-1 pool goroutines.
func (e *Objective[F]) run(phase int) {
	e.next.Store(0)
	helpers := e.workers - 1
	if n := len(e.pos); helpers > n-1 {
		helpers = n - 1
	}
	if helpers > 0 {
		e.startOnce.Do(func() {
			e.work = make(chan int, e.workers)
			for i := 0; i < e.workers-1; i++ {
				go func() {
					for ph := range e.work {
						e.loop(ph)
						e.wg.Done()
					}
				}()
			}
		})
		e.wg.Add(helpers)
		for i := 0; i < helpers; i++ {
			e.work <- phase
		}
	}
	e.loop(phase)
	if helpers > 0 {
		e.wg.Wait()
	}
}

func (e *Objective[F]) loop(phase int) {
	n := int64(len(e.pos))
	for {
		i := e.next.Add(1) - 1
		if i >= n {
			return
		}
		switch phase {
		case 0, 1:
			e.position(int(i), phase == 0)
		case 2:
			e.scale(int(i))
		}
	}
}

// position computes the statistics of position i and leaves exp((z-max)/tau) in grad;
// with finish it also scales the gradient (LML, MSL).
func (e *Objective[F]) position(i int, finish bool) {
	o0, o1 := e.b.Offsets[i], e.b.Offsets[i+1]
	x := e.b.Logits[o0:o1]
	g := e.grad[o0:o1]
	t := e.b.Targets[i]
	p := &e.pos[i]
	k := e.cfg.K
	it := e.invTau

	*p = Position{Allowed: len(x), RawWeight: 1}

	// Pass 1: the K largest logits (the first is the maximum).
	// Pass 2: exponentials into g, their sum in float64.
	// For long float32 slices (LML's vocabulary) both run block by block on the same
	// cached data (see fusedPass32), the exponentials relative to the running maximum.
	var top [maxInlineK]F
	var kth, maxv F
	var sum float64
	var blocks fusedBlocks
	fused := finish && k <= maxInlineK && len(x) >= fuseMin && useAVX2 && isFloat32[F]()
	if fused {
		var kth32 float32
		kth32, sum = fusedPass32(asF32(x), asF32(g), asF32(top[:k]), it, &blocks)
		kth, maxv = F(kth32), top[0]
	} else {
		if k <= maxInlineK {
			maxv, kth = topK(x, top[:k])
		} else {
			// Unusual beam widths only; no more than the slice's length, which a K of a
			// billion (a case file's "k") would otherwise allocate.
			buf := make([]F, min(k, len(x)))
			maxv, kth = topK(x, buf)
		}
	}
	if len(x) < k {
		kth = minFinite(x)
	}
	m := float64(maxv)
	if math.IsInf(m, 0) || math.IsNaN(m) {
		// +Inf, or all -Inf: the softmax is undefined.
		e.fail(i, g)
		return
	}

	if fused {
		// the sum is already relative to the final maximum
	} else if len(x) == 1 {
		g[0] = 1
		sum = 1
	} else {
		sum = expStore(x, g, m, it)
	}
	logSum := math.Log(sum)
	p.sum = sum
	zt := float64(x[t])
	if len(x) == 1 {
		p.LogP = 0
	} else {
		p.LogP = (zt-m)*it - logSum
	}
	p.NLL = 0 - p.LogP // +0, not -0, for single-token positions
	p.LogBeta = (float64(kth)-m)*it - logSum
	if len(x) == 1 {
		p.LogBeta = 0
	}
	p.Margin = p.LogBeta - p.LogP
	p.InTopK = x[t] >= kth
	if math.IsNaN(sum) || math.IsInf(p.NLL, 0) || math.IsNaN(p.NLL) {
		e.fail(i, g)
		return
	}

	switch e.cfg.Kind {
	case BEAR:
		p.RawWeight = 1 + e.cfg.Lambda*sigmoid((p.LogP-p.LogBeta)/e.cfg.Xi)
		p.Weight = p.RawWeight // normalised in phase 2 where Allowed > 1
	default:
		p.Weight = e.coef
	}
	if fused {
		c := p.Weight * it
		blocks.scale(asF32(g), m, it, c/sum, t, c)
	} else if finish {
		e.scale(i)
	}
}

// scale turns the exponentials of position i into c*(softmax - onehot)/tau.
func (e *Objective[F]) scale(i int) {
	o0, o1 := e.b.Offsets[i], e.b.Offsets[i+1]
	g := e.grad[o0:o1]
	p := &e.pos[i]
	if e.cfg.Kind == BEAR && p.Allowed > 1 {
		p.Weight = p.RawWeight * e.coef
	}
	if len(g) == 1 {
		// p = 1 exactly: the loss term and its gradient are exactly 0.
		g[0] = 0
		return
	}
	c := p.Weight * e.invTau
	scaleSub(g, c/p.sum, e.b.Targets[i], c)
}

func (e *Objective[F]) fail(i int, g []F) {
	for j := range g {
		g[j] = F(math.NaN())
	}
	for {
		old := e.errAt.Load()
		if old != 0 && old <= int64(i)+1 {
			return
		}
		if e.errAt.CompareAndSwap(old, int64(i)+1) {
			return
		}
	}
}

// maxInlineK is the largest beam width whose top-K buffer lives on the stack.
const maxInlineK = 64

// topK fills buf (len K) with the K largest elements of x in descending order (only
// len(x) of them when len(x) < K) and returns the maximum and the last element kept (the
// K-th largest when len(x) >= K). NaNs are not ordered here; the sum catches them.
func topK[F Float](x []F, buf []F) (maxv, kth F) {
	k := len(buf)
	if len(x) < k {
		k = len(x)
	}
	for i := 0; i < k; i++ {
		v := x[i]
		j := i
		for j > 0 && buf[j-1] < v {
			buf[j] = buf[j-1]
			j--
		}
		buf[j] = v
	}
	if k < len(buf) {
		return buf[0], buf[k-1]
	}
	scanTop(x[k:], buf)
	return buf[0], buf[k-1]
}

// scanTop inserts into the full, descending buf every element of x above its last entry.
// Blocks of 16 with nothing above the threshold are skipped by the vector kernel, which
// also says which elements of a block to look at.
func scanTop[F Float](x []F, buf []F) {
	k := len(buf)
	thr := buf[k-1]
	for i := 0; i < len(x); {
		skip, mask := scanAbove(x[i:], thr)
		i += skip
		if mask == 0 {
			mask = 0xffff // the tail, shorter than a block
		}
		end := min(i+16, len(x))
		for ; mask != 0; mask &= mask - 1 {
			j := i + bits.TrailingZeros32(mask)
			if j >= end {
				break
			}
			if v := x[j]; v > thr {
				p := k - 1
				for p > 0 && buf[p-1] < v {
					buf[p] = buf[p-1]
					p--
				}
				buf[p] = v
				thr = buf[k-1]
			}
		}
		i = end
	}
}

// scanAbove returns the start of the first 16-block of x holding an element above thr and
// the mask of those elements, or (the largest multiple of 16 <= len(x), 0) when there is
// none; without the vector kernel (0, 0xffff): look at the next 16.
func scanAbove[F Float](x []F, thr F) (int, uint32) {
	var z F
	if _, ok := any(z).(float32); ok {
		return scanAboveVec(asF32(x), float32(thr))
	}
	return 0, 0xffff
}

// minFinite returns the smallest logit above -Inf (the smallest non-zero probability).
func minFinite[F Float](x []F) F {
	mn := F(math.Inf(1))
	for _, v := range x {
		if v < mn && !math.IsInf(float64(v), -1) {
			mn = v
		}
	}
	if math.IsInf(float64(mn), 1) {
		return x[0]
	}
	return mn
}

func sigmoid(v float64) float64 {
	if v >= 0 {
		return 1 / (1 + math.Exp(-v))
	}
	ev := math.Exp(v)
	return ev / (1 + ev)
}

// expStore writes exp((x-m)*it) into g and returns the float64 sum.
func expStore[F Float](x, g []F, m, it float64) float64 {
	var z F
	switch any(z).(type) {
	case float32:
		return expStore32(asF32(x), asF32(g), m, it)
	default:
		return expStore64(asF64(x), asF64(g), m, it)
	}
}

// scaleSub sets g[j] = g[j]*a and then g[t] -= c.
func scaleSub[F Float](g []F, a float64, t int, c float64) {
	var z F
	switch any(z).(type) {
	case float32:
		scaleSub32(asF32(g), a, t, c)
	default:
		scaleSub64(asF64(g), a, t, c)
	}
}

func isFloat32[F Float]() bool {
	var z F
	_, ok := any(z).(float32)
	return ok
}

func asF32[F Float](x []F) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
}

func asF64[F Float](x []F) []float64 {
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
}
