package lossgrad

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randBatch builds a float64 batch with the given allowed-set sizes; logits ~ scale*N(0,1).
func randBatch(rng *rand.Rand, sizes []int, scale float64) LogitSlices[float64] {
	var b LogitSlices[float64]
	b.Offsets = append(b.Offsets, 0)
	for _, n := range sizes {
		for j := 0; j < n; j++ {
			b.Logits = append(b.Logits, scale*rng.NormFloat64())
		}
		b.Offsets = append(b.Offsets, len(b.Logits))
		b.Targets = append(b.Targets, rng.IntN(n))
	}
	return b
}

// naiveNLL is an independent float64 -log softmax(z/tau)[t] with max subtraction.
func naiveNLL(z []float64, t int, tau float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, v/tau)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v/tau - m)
	}
	return m + math.Log(s) - z[t]/tau
}

// fixedLoss is sum_i coef_i * NLL_i: the batch loss with the coefficients (1/N, or BEAR's
// normalised weights) held constant, which is what autograd differentiates.
func fixedLoss(b LogitSlices[float64], coef []float64, tau float64) float64 {
	var l float64
	for i := range b.Targets {
		l += coef[i] * naiveNLL(b.Logits[b.Offsets[i]:b.Offsets[i+1]], b.Targets[i], tau)
	}
	return l
}

// fdGrad is a fourth-order central finite difference of f at b.Logits.
func fdGrad(b LogitSlices[float64], f func() float64) []float64 {
	g := make([]float64, len(b.Logits))
	for j := range b.Logits {
		x0 := b.Logits[j]
		h := 1e-3 * math.Max(1, math.Abs(x0))
		at := func(d float64) float64 { b.Logits[j] = x0 + d; return f() }
		g[j] = (8*(at(h)-at(-h)) - (at(2*h) - at(-2*h))) / (12 * h)
		b.Logits[j] = x0
	}
	return g
}

func relNormErr(got, want []float64) float64 {
	var num, den float64
	for i := range got {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestFiniteDifferences checks every loss's gradient against finite differences in float64.
// Tolerance 1e-7 relative (the bar); the fourth-order stencil with h = 1e-3 has a
// truncation error near 1e-12 and a rounding error near 1e-13·|L|/|g|, so 1e-7 leaves room
// while catching any wrong term (a missing 1/tau or a wrong weight is O(1)).
// For BEAR, beta_t and w_t are held constant, as the official code detaches them.
func TestFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	worst := map[Kind]float64{}
	for _, kind := range []Kind{LML, MSL, BEAR} {
		for trial := 0; trial < 12; trial++ {
			npos := 1 + rng.IntN(6)
			sizes := make([]int, npos)
			for i := range sizes {
				sizes[i] = 1 + rng.IntN(30)
			}
			if trial == 0 {
				sizes = []int{1, 2, 13, 1}
			}
			cfg := DefaultConfig(kind)
			cfg.Tau = []float64{1, 0.7, 2.5}[trial%3]
			cfg.K = []int{10, 3, 1, 25}[trial%4]
			cfg.Lambda = []float64{0.25, 1, 3}[trial%3]
			cfg.Xi = []float64{2.75, 0.5, 1}[trial%3]
			b := randBatch(rng, sizes, 1+3*rng.Float64())
			grad := make([]float64, len(b.Logits))
			diag := make([]Position, npos)
			res, err := computeOnce(cfg, b, grad, diag)
			if err != nil {
				t.Fatal(err)
			}
			coef := make([]float64, npos)
			for i := range coef {
				coef[i] = diag[i].Weight
			}
			if got, want := res.Loss, fixedLoss(b, coef, cfg.Tau); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("%v trial %d: loss %v, independent %v", kind, trial, got, want)
			}
			var fd []float64
			if kind == BEAR {
				fd = fdGrad(b, func() float64 { return fixedLoss(b, coef, cfg.Tau) })
			} else {
				// LML and MSL: differentiate the package's own loss, nothing held fixed.
				fd = fdGrad(b, func() float64 {
					r, err := computeOnce(cfg, b, make([]float64, len(b.Logits)), nil)
					if err != nil {
						t.Fatal(err)
					}
					return r.Loss
				})
			}
			e := relNormErr(grad, fd)
			worst[kind] = math.Max(worst[kind], e)
			if e > 1e-7 {
				t.Errorf("%v trial %d sizes %v: gradient relative error %.3g > 1e-7", kind, trial, sizes, e)
			}
		}
	}
	t.Logf("worst finite-difference relative errors: LML %.2g, MSL %.2g, BEAR %.2g", worst[LML], worst[MSL], worst[BEAR])
}

// TestBEARWeights checks the weight formula, the normalisation and single-token positions.
func TestBEARWeights(t *testing.T) {
	cfg := DefaultConfig(BEAR)
	cfg.K = 2
	b := LogitSlices[float64]{
		Logits:  []float64{1, 2, 3, 5, 0, 0.5},
		Offsets: []int{0, 3, 4, 6},
		Targets: []int{0, 0, 1},
	}
	grad := make([]float64, 6)
	diag := make([]Position, 3)
	res, err := computeOnce(cfg, b, grad, diag)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]float64, 3)
	for i := range raw {
		z := b.Logits[b.Offsets[i]:b.Offsets[i+1]]
		logp := -naiveNLL(z, b.Targets[i], 1)
		var logbeta float64
		switch i {
		case 0:
			logbeta = -naiveNLL(z, 1, 1) // 2nd largest of {1,2,3}
		case 1:
			logbeta = 0
		case 2:
			logbeta = -naiveNLL(z, 0, 1) // fewer than K=2? no: 2 allowed, 2nd largest is 0
		}
		raw[i] = 1 + cfg.Lambda/(1+math.Exp(-(logp-logbeta)/cfg.Xi))
		if d := diag[i]; math.Abs(d.LogP-logp) > 1e-14 || math.Abs(d.LogBeta-logbeta) > 1e-14 || math.Abs(d.RawWeight-raw[i]) > 1e-14 {
			t.Errorf("position %d: diag %+v, want logp %v logbeta %v w %v", i, d, logp, logbeta, raw[i])
		}
	}
	s := raw[0] + raw[2]
	if w := diag[0].Weight; math.Abs(w-raw[0]/(s+WeightEps)) > 1e-15 {
		t.Errorf("normalised weight %v, want %v", w, raw[0]/(s+WeightEps))
	}
	if diag[1].Weight != raw[1] || diag[1].NLL != 0 || grad[3] != 0 {
		t.Errorf("single-token position: weight %v (want raw %v), nll %v, grad %v", diag[1].Weight, raw[1], diag[1].NLL, grad[3])
	}
	if res.Multi != 2 || math.Abs(res.WeightSum-s) > 1e-14 {
		t.Errorf("multi %d weightsum %v, want 2 and %v", res.Multi, res.WeightSum, s)
	}
	if diag[0].InTopK || !diag[1].InTopK || !diag[2].InTopK || res.Violations != 1 {
		t.Errorf("in_top_k %v %v %v violations %d", diag[0].InTopK, diag[1].InTopK, diag[2].InTopK, res.Violations)
	}
}

// TestFewerThanKAndTies: beta is the smallest allowed probability when fewer than K are
// allowed, and a positive tied with the K-th largest counts as inside the top K.
func TestFewerThanKAndTies(t *testing.T) {
	cfg := DefaultConfig(MSL)
	cfg.K = 3
	b := LogitSlices[float64]{
		Logits:  []float64{4, -1, 2, 7, 7, 7, 7, 1},
		Offsets: []int{0, 3, 8},
		Targets: []int{1, 2},
	}
	diag := make([]Position, 2)
	if _, err := computeOnce(cfg, b, make([]float64, 8), diag); err != nil {
		t.Fatal(err)
	}
	if d := diag[0]; d.Margin != 0 || !d.InTopK || d.LogBeta != d.LogP {
		t.Errorf("fewer-than-K position: %+v (want beta = min prob = p_t)", d)
	}
	if d := diag[1]; d.Margin != 0 || !d.InTopK {
		t.Errorf("tie at the K-th value: %+v", d)
	}
}

// TestLargeLogits: no overflow where a softmax without max subtraction would overflow, and
// shift invariance.
func TestLargeLogits(t *testing.T) {
	for _, kind := range []Kind{LML, MSL, BEAR} {
		cfg := DefaultConfig(kind)
		cfg.Tau = 0.5
		base := LogitSlices[float64]{Logits: []float64{1, 2, 3, 0.5}, Offsets: []int{0, 4}, Targets: []int{2}}
		big := LogitSlices[float64]{Logits: []float64{1e5 + 1, 1e5 + 2, 1e5 + 3, 1e5 + 0.5}, Offsets: []int{0, 4}, Targets: []int{2}}
		g0, g1 := make([]float64, 4), make([]float64, 4)
		r0, err0 := computeOnce(cfg, base, g0, nil)
		r1, err1 := computeOnce(cfg, big, g1, nil)
		if err0 != nil || err1 != nil {
			t.Fatal(err0, err1)
		}
		if math.Abs(r0.Loss-r1.Loss) > 1e-9 || relNormErr(g1, g0) > 1e-9 {
			t.Errorf("%v: shifted by 1e5: loss %v vs %v, grads %v vs %v", kind, r1.Loss, r0.Loss, g1, g0)
		}
		// float32 too (exp(88) already overflows float32 without the max)
		b32 := LogitSlices[float32]{Logits: []float32{300, 301, 299, 250}, Offsets: []int{0, 4}, Targets: []int{0}}
		g32 := make([]float32, 4)
		r, err := computeOnce(cfg, b32, g32, nil)
		if err != nil || math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
			t.Errorf("%v float32 large logits: %v %v", kind, r.Loss, err)
		}
	}
}

func TestErrors(t *testing.T) {
	cfg := DefaultConfig(MSL)
	for _, tc := range []struct {
		b    LogitSlices[float64]
		want string
	}{
		{LogitSlices[float64]{Logits: []float64{1, 2}, Offsets: []int{0, 2}, Targets: []int{2}}, "target 2 out of range [0,2)"},
		{LogitSlices[float64]{Logits: []float64{1, 2}, Offsets: []int{0, 2, 2}, Targets: []int{0, 0}}, "position 1: 0 logits"},
		{LogitSlices[float64]{Logits: []float64{1, 2}, Offsets: []int{0, 1}, Targets: []int{0}}, "offsets[1] is 1"},
		{LogitSlices[float64]{Logits: []float64{1, 2}, Offsets: []int{0}, Targets: []int{0}}, "offsets: have 1 entries"},
	} {
		_, err := computeOnce(cfg, tc.b, make([]float64, len(tc.b.Logits)), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	nan := LogitSlices[float64]{Logits: []float64{1, math.NaN(), 3, 1, 1}, Offsets: []int{0, 2, 5}, Targets: []int{0, 1}}
	if _, err := computeOnce(cfg, nan, make([]float64, 5), nil); !errors.Is(err, errNonFinite) || !strings.Contains(err.Error(), "position 0") {
		t.Errorf("NaN logits: %v", err)
	}
	if _, err := NewObjective[float32](Config{Kind: BEAR, Tau: 1, K: 10}); err == nil || !strings.Contains(err.Error(), "lossgrad.Config.Xi") {
		t.Errorf("xi 0 accepted: %v", err)
	}
	if r, err := computeOnce(cfg, LogitSlices[float64]{Offsets: []int{0}}, nil, nil); err != nil || r.Loss != 0 {
		t.Errorf("empty batch: %v %v", r, err)
	}
}

// TestFloat32MatchesFloat64: the float32 path (vector kernels where the CPU has AVX2,
// else the portable loops) agrees with the float64 path to float32 precision; the
// evaluator is reused across batches and worker counts.
//
// Tolerances: the AVX2 exponential works in float32 (Cephes expf, about 2 ulp) on
// (x - max)*(1/tau) rounded to float32, so each exp carries a relative error up to about
// 1e-7 * (1 + |d|); the softmax sum then has a relative error near 1e-7, which moves the
// loss (about 8 here) by about 1e-8 relative: loss within 1e-7 relative, gradients within
// 1e-6 of the largest gradient.
//
// Both paths run where the CPU has AVX2 (each pass sets useAVX2 from the CPU's own answer, not
// from the previous pass), and the test checks which ones did.
func TestFloat32MatchesFloat64(t *testing.T) {
	cpuHasAVX2 := useAVX2
	defer func() { useAVX2 = cpuHasAVX2 }()
	var ran []bool
	for _, vec := range []bool{false, true} {
		useAVX2 = vec && cpuHasAVX2
		if slices.Contains(ran, useAVX2) {
			continue // no AVX2 on this CPU: the portable path has run already
		}
		testFloat32MatchesFloat64(t)
		ran = append(ran, useAVX2)
	}
	want := []bool{false}
	if cpuHasAVX2 {
		want = append(want, true)
	}
	if !slices.Equal(ran, want) {
		t.Errorf("paths run (AVX2 on?): %v, want %v", ran, want)
	}
	t.Logf("paths run (AVX2 on?): %v; CPU has AVX2: %v", ran, cpuHasAVX2)
}

func testFloat32MatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []Kind{LML, MSL, BEAR} {
		for _, workers := range []int{1, 2, 3} {
			cfg := DefaultConfig(kind)
			cfg.Workers = workers
			cfg.Tau = 0.8
			e32, _ := NewObjective[float32](cfg)
			for rep := 0; rep < 3; rep++ {
				sizes := make([]int, 1+rng.IntN(40))
				for i := range sizes {
					sizes[i] = 1 + rng.IntN(3000)
				}
				b := randBatch(rng, sizes, 4)
				b32 := LogitSlices[float32]{Logits: make([]float32, len(b.Logits)), Offsets: b.Offsets, Targets: b.Targets}
				for i, v := range b.Logits {
					b32.Logits[i] = float32(v)
					b.Logits[i] = float64(b32.Logits[i])
				}
				g64 := make([]float64, len(b.Logits))
				g32 := make([]float32, len(b.Logits))
				r64, err := computeOnce(cfg, b, g64, nil)
				if err != nil {
					t.Fatal(err)
				}
				r32, err := e32.Compute(b32, g32, nil)
				if err != nil {
					t.Fatal(err)
				}
				var maxErr, maxG float64
				for i := range g64 {
					maxErr = math.Max(maxErr, math.Abs(float64(g32[i])-g64[i]))
					maxG = math.Max(maxG, math.Abs(g64[i]))
				}
				if math.Abs(r32.Loss-r64.Loss) > 1e-7*math.Abs(r64.Loss) || maxErr > 1e-6*maxG || r32.Violations != r64.Violations {
					t.Errorf("%v avx2 %v workers %d: float32 loss %v vs %v, grad max err %.3g (max |g| %.3g)", kind, useAVX2, workers, r32.Loss, r64.Loss, maxErr, maxG)
				}
			}
			e32.Close()
		}
	}
}

func TestFastExp(t *testing.T) {
	var worst float64
	for x := -707.5; x <= 0; x += 0.0137 {
		want := math.Exp(x)
		worst = math.Max(worst, math.Abs(fastExp(x)-want)/want)
	}
	if worst > 1e-13 {
		t.Errorf("fastExp max relative error %.3g > 1e-13", worst)
	}
	if fastExp(-800) != 0 || fastExp(math.Inf(-1)) != 0 || !math.IsNaN(fastExp(math.NaN())) {
		t.Error("fastExp special values")
	}
	x := []float32{0, -1, -2.5, -30, -100, -1000}
	g := make([]float32, len(x))
	s := expStore32(x, g, 0, 1)
	var want float64
	for i, v := range x {
		e := math.Exp(float64(v))
		want += e
		if math.Abs(float64(g[i])-e) > math.Max(1e-7*e, 1e-45) { // float32 subnormals below 1e-38
			t.Errorf("expStore32[%d] = %v, want %v", i, g[i], e)
		}
	}
	if math.Abs(s-want) > 1e-13 {
		t.Errorf("sum %v want %v", s, want)
	}
}

func TestComputeDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	b := randBatch(rng, []int{300, 2, 1, 3000, 40, 700}, 2)
	b32 := LogitSlices[float32]{Logits: make([]float32, len(b.Logits)), Offsets: b.Offsets, Targets: b.Targets}
	for i, v := range b.Logits {
		b32.Logits[i] = float32(v)
	}
	g := make([]float32, len(b.Logits))
	e, _ := NewObjective[float32](DefaultConfig(BEAR))
	defer e.Close()
	e.Compute(b32, g, nil)
	if n := testing.AllocsPerRun(20, func() { e.Compute(b32, g, nil) }); n != 0 {
		t.Errorf("Compute allocates %v times per call", n)
	}
}

// TestVectorKernels compares the AVX2 kernels with the portable loops (skipped without AVX2).
func TestVectorKernels(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA on this CPU (or purego build)")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	// exponential: relative error against math.Exp of the float32-rounded argument
	for _, it := range []float64{1, 1 / 0.7, 0.25} {
		n := 4099
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 15)
		}
		x[5] = -1e30 // far below the clamp: ~0
		m := float64(x[0])
		for _, v := range x {
			m = math.Max(m, float64(v))
		}
		g := make([]float32, n)
		sum := expStore32(x, g, m, it)
		var want float64
		var worst float64
		for i, v := range x {
			d := float64(float32((v - float32(m)) * float32(it)))
			if i >= n&^7 { // the tail takes the portable float64 loop
				d = (float64(v) - m) * it
			}
			e := math.Exp(d)
			want += math.Exp((float64(v) - m) * it)
			if e > 1e-37 {
				worst = math.Max(worst, math.Abs(float64(g[i])-e)/e)
			} else if g[i] > 1e-36 {
				t.Errorf("exp(%v) = %v, want ~0", d, g[i])
			}
		}
		if worst > 3e-7 {
			t.Errorf("it %v: AVX2 exp max relative error %.3g > 3e-7", it, worst)
		}
		if math.Abs(sum-want) > 1e-6*want {
			t.Errorf("it %v: sum %v, want %v", it, sum, want)
		}
	}
	// top-K scan: same K largest as a sort, with ties and every tail length
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(200)
		if trial%50 == 0 {
			n = 20000
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.IntN(40)) // many ties
		}
		k := 1 + rng.IntN(12)
		buf := make([]float32, k)
		maxv, kth := topK(x, buf)
		useAVX2 = false
		buf2 := make([]float32, k)
		maxw, kthw := topK(x, buf2)
		useAVX2 = true
		if maxv != maxw || kth != kthw {
			t.Fatalf("n %d k %d: topK (%v, %v), portable (%v, %v)", n, k, maxv, kth, maxw, kthw)
		}
	}
	// scaling
	g := make([]float32, 1003)
	for i := range g {
		g[i] = float32(i)
	}
	scaleSub32(g, 0.5, 7, 1)
	for i, v := range g {
		want := float32(i) * 0.5
		if i == 7 {
			want -= 1
		}
		if v != want {
			t.Fatalf("scaled g[%d] = %v, want %v", i, v, want)
		}
	}
}

// TestFusedLongSlices covers the block-wise float32 pass used for long slices (LML): the
// running maximum changes across blocks, the maximum sits in the last block, ties; the
// result must match the float64 path as in TestFloat32MatchesFloat64.
func TestFusedLongSlices(t *testing.T) {
	if !useAVX2 {
		t.Skip("the fused pass needs the AVX2 kernels")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	sizes := []int{fuseMin, 20000, 40001, 128256, 300000}
	for _, kind := range []Kind{LML, MSL} {
		var b LogitSlices[float64]
		b.Offsets = []int{0}
		for pi, n := range sizes {
			for j := 0; j < n; j++ {
				v := 3 * rng.NormFloat64()
				switch pi {
				case 1:
					v += 20 * float64(j) / float64(n) // rising: the running max moves every block
				case 2:
					v = float64(rng.IntN(7)) // ties everywhere
				}
				b.Logits = append(b.Logits, float64(float32(v)))
			}
			if pi == 0 {
				b.Logits[len(b.Logits)-1] = 40 // maximum in the last element
			}
			b.Offsets = append(b.Offsets, len(b.Logits))
			b.Targets = append(b.Targets, rng.IntN(n))
		}
		b32 := LogitSlices[float32]{Logits: make([]float32, len(b.Logits)), Offsets: b.Offsets, Targets: b.Targets}
		for i, v := range b.Logits {
			b32.Logits[i] = float32(v)
		}
		cfg := DefaultConfig(kind)
		cfg.Tau = 0.9
		g64 := make([]float64, len(b.Logits))
		g32 := make([]float32, len(b.Logits))
		d64 := make([]Position, len(sizes))
		d32 := make([]Position, len(sizes))
		r64, err := computeOnce(cfg, b, g64, d64)
		if err != nil {
			t.Fatal(err)
		}
		r32, err := computeOnce(cfg, b32, g32, d32)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r32.Loss-r64.Loss) > 1e-7*math.Abs(r64.Loss) {
			t.Errorf("%v: loss float32 %v, float64 %v", kind, r32.Loss, r64.Loss)
		}
		for i := range sizes {
			var maxErr, maxG float64
			for j := b.Offsets[i]; j < b.Offsets[i+1]; j++ {
				maxErr = math.Max(maxErr, math.Abs(float64(g32[j])-g64[j]))
				maxG = math.Max(maxG, math.Abs(g64[j]))
			}
			if maxErr > 1e-6*maxG {
				t.Errorf("%v position %d (%d logits): gradient max error %.3g (max |g| %.3g)", kind, i, sizes[i], maxErr, maxG)
			}
			if d32[i].InTopK != d64[i].InTopK || math.Abs(d32[i].LogBeta-d64[i].LogBeta) > 1e-6 || math.Abs(d32[i].LogP-d64[i].LogP) > 1e-6 {
				t.Errorf("%v position %d: diag float32 %+v, float64 %+v", kind, i, d32[i], d64[i])
			}
		}
	}
	// NaN inside a long slice is still reported
	x := make([]float32, 50000)
	x[33333] = float32(math.NaN())
	_, err := computeOnce(DefaultConfig(LML), LogitSlices[float32]{Logits: x, Offsets: []int{0, len(x)}, Targets: []int{0}}, make([]float32, len(x)), nil)
	if !errors.Is(err, errNonFinite) {
		t.Errorf("NaN in a fused slice: %v", err)
	}
}

// sliceRange is positions [lo, hi) of b as a batch of their own.
func sliceRange(b LogitSlices[float64], lo, hi int) LogitSlices[float64] {
	off := make([]int, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		off = append(off, b.Offsets[i]-b.Offsets[lo])
	}
	return LogitSlices[float64]{Logits: b.Logits[b.Offsets[lo]:b.Offsets[hi]], Offsets: off, Targets: b.Targets[lo:hi]}
}

// TestUnnormalisedMicroBatches: a group cut into micro-batches, each computed Unnormalised,
// summed and divided once by the group's normaliser, gives the group's loss and gradient
// (the trainer's accumulation, issue: bear train). Tolerance 1e-12 relative: only the order of
// float64 sums differs.
func TestUnnormalisedMicroBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, kind := range []Kind{LML, MSL, BEAR} {
		sizes := []int{1, 14, 3, 1, 25, 2, 9, 1, 30, 4}
		b := randBatch(rng, sizes, 2)
		cfg := DefaultConfig(kind)
		want := make([]float64, len(b.Logits))
		ref, err := computeOnce(cfg, b, want, nil)
		if err != nil {
			t.Fatal(err)
		}
		un := cfg
		un.Unnormalised = true
		got := make([]float64, len(b.Logits))
		var loss, norm float64
		for _, cut := range [][2]int{{0, 3}, {3, 4}, {4, 9}, {9, 10}} {
			part := sliceRange(b, cut[0], cut[1])
			r, err := computeOnce(un, part, got[b.Offsets[cut[0]]:b.Offsets[cut[1]]], nil)
			if err != nil {
				t.Fatal(err)
			}
			loss += r.Loss
			if kind == BEAR {
				norm += r.WeightSum
			} else {
				norm += float64(r.Positions)
			}
		}
		if kind == BEAR {
			norm += WeightEps
		}
		for i := range got {
			got[i] /= norm
		}
		if math.Abs(loss/norm-ref.Loss) > 1e-12*math.Abs(ref.Loss) {
			t.Errorf("%v: accumulated loss %v, one-shot %v", kind, loss/norm, ref.Loss)
		}
		if e := relNormErr(got, want); e > 1e-12 {
			t.Errorf("%v: accumulated gradient relative error %.3g", kind, e)
		}
	}
}
