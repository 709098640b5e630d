package optim

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestFMA32 checks fma32 against exact arithmetic (math/big) rounded once to float32,
// on random operands of every scale, near-cancelling sums, float32 ties and subnormals.
func TestFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randF := func() float32 {
		m := rng.Float64()*2 - 1
		return float32(math.Ldexp(m, rng.IntN(80)-60))
	}
	type triple struct{ a, b, c float32 }
	cases := []triple{
		{1, 1, 0},
		{0.1, 3, -0.3},
		{1 + 1.0/(1<<12), 1 + 1.0/(1<<12), -1}, // product needs 25 bits: a float32 tie before c
		{1 + 1.0/(1<<23), 1 - 1.0/(1<<23), -1}, // exact result -2^-46
		// a*b + 1 = 1 + 3*2^-24 - 3*2^-68: float64 rounds it onto the float32 tie
		// 1 + 3*2^-24, which rounds to even (1 + 2^-22); exactly it rounds to 1 + 2^-23.
		{float32(math.Ldexp(1+math.Ldexp(1, -22), -12)), float32(math.Ldexp(3*(1-math.Ldexp(1, -22)), -12)), 1},
		{1e-20, 1e-20, 1e-45},        // subnormal result
		{3e38, 2, -3e38},             // exact result 3e38 despite a huge product
		{float32(math.Inf(1)), 1, 1}, // infinities pass through
		{1, float32(math.Inf(1)), float32(math.Inf(-1))},
	}
	// Sums just below a float32 tie: c = ±(1 + k*2^-23)*2^e and a*b = 2^(e-24)*(1 - u^2*2^-46),
	// half a unit of c minus a little, which float64 rounds onto the tie.
	for _, ec := range []int{-120, -30, 0, 7, 100} {
		for k := range 4 {
			for u := 1; u <= 64; u *= 4 {
				a := float32(math.Ldexp(1+float64(u)*0x1p-23, ec/2))
				b := float32(math.Ldexp(1-float64(u)*0x1p-23, ec-ec/2-24))
				c := float32(math.Ldexp(1+float64(k)*0x1p-23, ec))
				cases = append(cases, triple{a, b, c}, triple{-a, b, -c}, triple{a, b, -c})
			}
		}
	}
	for range 200000 {
		a, b := randF(), randF()
		c := randF()
		if rng.IntN(2) == 0 { // make the sum nearly cancel
			c = -float32(float64(a)*float64(b)) * (1 + float32(rng.IntN(5)-2)/(1<<23))
		}
		cases = append(cases, triple{a, b, c})
	}
	same := func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) || isNaN32(x) && isNaN32(y) }
	ties := 0
	for _, tc := range cases {
		want := exactFMA32(tc.a, tc.b, tc.c)
		if got := fma32(tc.a, tc.b, tc.c); !same(got, want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, exact %g", tc.a, tc.b, tc.c, got, want)
		}
		got, ok := fma32Fast(tc.a, tc.b, tc.c)
		if !ok {
			ties++
		} else if !same(got, want) {
			t.Fatalf("fma32Fast(%g, %g, %g) = %g and ok, exact %g", tc.a, tc.b, tc.c, got, want)
		}
	}
	if ties < 100 {
		t.Errorf("only %d cases took the tie path: the test no longer exercises it", ties)
	}
}

func isNaN32(x float32) bool { return x != x }

func exactFMA32(a, b, c float32) float32 {
	if math.IsInf(float64(a), 0) || math.IsInf(float64(b), 0) || math.IsInf(float64(c), 0) {
		return float32(float64(a)*float64(b) + float64(c))
	}
	x := new(big.Float).SetPrec(0).SetFloat64(float64(a))
	x.SetPrec(200).Mul(x, big.NewFloat(float64(b)))
	x.Add(x, big.NewFloat(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestLinearWarmupFactor(t *testing.T) {
	tests := []struct {
		name  string
		sched LinearWarmup
		want  []float64 // factors of steps 0, 1, ...
	}{
		{"warmup 3 of 8", LinearWarmup{3, 8}, []float64{0, 1.0 / 3, 2.0 / 3, 1, 0.8, 0.6, 0.4, 0.2, 0, 0}},
		{"official 20 of 100", LinearWarmup{20, 100}, []float64{0, 0.05, 0.1}},
		{"no warm-up", LinearWarmup{0, 4}, []float64{1, 0.75, 0.5, 0.25, 0}},
		{"warm-up = total", LinearWarmup{2, 2}, []float64{0, 0.5, 0, 0}},
		{"warm-up past total", LinearWarmup{4, 2}, []float64{0, 0.25, 0.5, 0.75, 0, 0}},
		{"one step", LinearWarmup{0, 1}, []float64{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for step, want := range tt.want {
				if got := tt.sched.Factor(step); math.Abs(got-want) > 1e-15 {
					t.Errorf("Factor(%d) = %v, want %v", step, got, want)
				}
			}
			if got := tt.sched.Factor(-1); got != 0 {
				t.Errorf("Factor(-1) = %v, want 0", got)
			}
		})
	}
}

func TestLinearWarmupValidate(t *testing.T) {
	tests := []struct {
		sched   LinearWarmup
		wantErr string
	}{
		{LinearWarmup{20, 100}, ""},
		{LinearWarmup{0, 1}, ""},
		{LinearWarmup{5, 2}, ""},
		{LinearWarmup{-1, 10}, "-1 warm-up steps"},
		{LinearWarmup{0, 0}, "0 total steps"},
		{LinearWarmup{3, -5}, "-5 total steps"},
	}
	for _, tt := range tests {
		checkErr(t, tt.sched.Validate(), tt.wantErr)
	}
}

// checkErr fails unless err is nil where want is "", or contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q, want one containing %q", err, want)
	}
}

func TestClipGradNorm(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	tests := []struct {
		name     string
		grads    [][]float32
		maxNorm  float64
		wantNorm float64
		want     [][]float32 // gradients after clipping; NaN matches NaN
	}{
		{"below the limit: unchanged", [][]float32{{0.375}, {0.5, 0}}, 1, 0.625, [][]float32{{0.375}, {0.5, 0}}},
		{"above: scaled to the limit", [][]float32{{3}, {4, 0}}, 1, 5,
			[][]float32{{3 * clipCoef(5, 1)}, {4 * clipCoef(5, 1), 0}}},
		{"just above (1e-6 keeps the factor below 1)", [][]float32{{1}}, 1, 1, [][]float32{{1 * clipCoef(1, 1)}}},
		{"zero gradients", [][]float32{{0, 0}, {}}, 1, 0, [][]float32{{0, 0}, {}}},
		{"max norm 0 zeroes", [][]float32{{1, -2}}, 0, math.Sqrt(5), [][]float32{{0, float32(math.Copysign(0, -1))}}},
		{"infinite norm: 0*inf is NaN as in torch", [][]float32{{inf, 1}}, 1, math.Inf(1), [][]float32{{nan, 0}}},
		{"NaN gradient poisons every gradient", [][]float32{{nan}, {1}}, 1, math.NaN(), [][]float32{{nan}, {nan}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := make([]Param, len(tt.grads))
			for i, g := range tt.grads {
				params[i] = Param{Name: string(rune('a' + i)), Value: make([]float32, len(g)), Grad: append([]float32(nil), g...)}
			}
			norm := ClipGradNorm(params, tt.maxNorm)
			if !(norm == tt.wantNorm || math.IsNaN(norm) && math.IsNaN(tt.wantNorm)) {
				t.Errorf("norm %v, want %v", norm, tt.wantNorm)
			}
			for i, p := range params {
				for j, g := range p.Grad {
					w := tt.want[i][j]
					if math.Float32bits(g) != math.Float32bits(w) && !(isNaN32(g) && isNaN32(w)) {
						t.Errorf("grad[%d][%d] = %v, want %v", i, j, g, w)
					}
				}
			}
		})
	}
	if n := ClipGradNorm(nil, 1); n != 0 {
		t.Errorf("no parameters: norm %v, want 0", n)
	}
}

// TestClipCoef pins the float32 arithmetic of the factor: the clamp at 1, the 1e-6, and
// torch's `max_norm / (norm + 1e-6)` being reciprocal() * max_norm (Tensor.__rdiv__):
// the wanted values were printed by torch 1.13 and differ from a direct float32 division
// (0.09999999, 0.029999997) in the last bit.
func TestClipCoef(t *testing.T) {
	tests := []struct {
		norm, maxNorm float64
		want          float32
	}{
		{0.5, 1, 1},
		{1, 1, 0.99999905},
		{7, 0.7, 0.09999998},
		{10, 0.3, 0.03},
		{7, 0.3, 0.042857137},
		{math.Inf(1), 1, 0},
	}
	for _, tt := range tests {
		if got := clipCoef(tt.norm, tt.maxNorm); got != tt.want {
			t.Errorf("clipCoef(%v, %v) = %v, want %v", tt.norm, tt.maxNorm, got, tt.want)
		}
	}
}
