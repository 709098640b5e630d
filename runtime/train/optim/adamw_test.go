package optim

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestAdamWConfigValidate(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name    string
		cfg     AdamWConfig
		wantErr string
	}{
		{"default", DefaultAdamW(), ""},
		{"zero betas and eps", AdamWConfig{0, 0, 0, 0}, ""},
		{"weight decay", AdamWConfig{0.9, 0.95, 1e-6, 0.1}, ""},
		{"beta1 = 1", AdamWConfig{1, 0.999, 1e-8, 0}, "beta1 1 is not in [0, 1)"},
		{"beta1 negative", AdamWConfig{-0.1, 0.999, 1e-8, 0}, "beta1 -0.1"},
		{"beta2 = 1", AdamWConfig{0.9, 1, 1e-8, 0}, "beta2 1"},
		{"beta2 NaN", AdamWConfig{0.9, nan, 1e-8, 0}, "beta2 NaN"},
		{"eps negative", AdamWConfig{0.9, 0.999, -1e-8, 0}, "eps -1e-08 is negative"},
		{"weight decay negative", AdamWConfig{0.9, 0.999, 1e-8, -0.01}, "weight decay -0.01"},
		{"weight decay NaN", AdamWConfig{0.9, 0.999, 1e-8, nan}, "weight decay NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.cfg.Validate(), tt.wantErr)
			_, err := NewAdamW(tt.cfg, []Param{{Name: "w", Value: []float32{1}, Grad: []float32{0}}})
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestNewAdamWParams(t *testing.T) {
	ok := Param{Name: "a", Value: []float32{1, 2}, Grad: []float32{0, 0}}
	tests := []struct {
		name    string
		params  []Param
		wantErr string
	}{
		{"one", []Param{ok}, ""},
		{"empty tensor", []Param{ok, {Name: "b"}}, ""},
		{"none", nil, "new AdamW: no parameters"},
		{"no name", []Param{ok, {Value: []float32{1}, Grad: []float32{1}}}, "parameter 1 has no name"},
		{"duplicate", []Param{ok, ok}, `parameters 0 and 1 are both named "a"`},
		{"short gradient", []Param{{Name: "w", Value: []float32{1, 2}, Grad: []float32{1}}}, `parameter "w": gradient has 1 values, the value 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAdamW(DefaultAdamW(), tt.params)
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestAdamWFirstStep checks the first update against its closed form in float64: with zero
// moments the bias corrections cancel, m̂ = g and v̂ = g², so the value moves by
// -lr * g / (|g| + eps) after the decoupled decay, and lr 0 (the schedule's first step)
// moves no value while still filling the moments.
func TestAdamWFirstStep(t *testing.T) {
	grad := []float32{0.5, -2, 1e-3, 0}
	for _, lr := range []float64{1e-3, 0} {
		value := []float32{1, -1, 0.25, 3}
		start := append([]float32(nil), value...)
		cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
		opt, err := NewAdamW(cfg, []Param{{Name: "w", Value: value, Grad: grad}})
		if err != nil {
			t.Fatal(err)
		}
		opt.Step(lr)
		st := opt.State()
		for i, g := range grad {
			g64 := float64(g)
			want := float64(start[i])*(1-lr*cfg.WeightDecay) - lr*g64/(math.Abs(g64)+cfg.Eps)
			if d := math.Abs(float64(value[i]) - want); d > 1e-7*math.Max(1, math.Abs(want)) {
				t.Errorf("lr %g: value[%d] = %v, closed form %v", lr, i, value[i], want)
			}
			if m, v := float64(st.Params[0].ExpAvg[i]), float64(st.Params[0].ExpAvgSq[i]); math.Abs(m-0.1*g64) > 1e-7*math.Abs(g64) || math.Abs(v-1e-3*g64*g64) > 1e-6*g64*g64 {
				t.Errorf("lr %g: moments[%d] = %v, %v; want %v, %v", lr, i, m, v, 0.1*g64, 1e-3*g64*g64)
			}
		}
		if st.Step != 1 || opt.Steps() != 1 {
			t.Errorf("lr %g: step count %d/%d after one step", lr, st.Step, opt.Steps())
		}
	}
}

// trainingRun is a deterministic run for the state tests: a few tensors and a gradient
// stream drawn from a seeded generator.
type trainingRun struct {
	params []Param
	grads  *rand.Rand
	sched  LinearWarmup
}

func newTrainingRun(values [][]float32) *trainingRun {
	r := &trainingRun{grads: rand.New(rand.NewPCG(3, 4)), sched: LinearWarmup{Warmup: 2, Total: 10}}
	for i, v := range values {
		r.params = append(r.params, Param{Name: string(rune('a' + i)), Value: append([]float32(nil), v...), Grad: make([]float32, len(v))})
	}
	return r
}

func (r *trainingRun) step(opt *AdamW, step int) {
	for _, p := range r.params {
		for j := range p.Grad {
			p.Grad[j] = float32(r.grads.NormFloat64() * 0.1)
		}
	}
	ClipGradNorm(r.params, 1)
	opt.Step(r.sched.LR(1e-3, step))
}

func randomValues(sizes ...int) [][]float32 {
	rng := rand.New(rand.NewPCG(5, 6))
	out := make([][]float32, len(sizes))
	for i, n := range sizes {
		out[i] = make([]float32, n)
		for j := range out[i] {
			out[i][j] = float32(rng.NormFloat64())
		}
	}
	return out
}

// TestAdamWResume: a run checkpointed after k steps (values + State through JSON, as a
// checkpoint file would hold them) and resumed by a fresh optimizer ends bit for bit where
// the uninterrupted run ends.
func TestAdamWResume(t *testing.T) {
	const total, cut = 10, 4
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	init := randomValues(7, 64, 300)

	whole := newTrainingRun(init)
	optWhole, err := NewAdamW(cfg, whole.params)
	if err != nil {
		t.Fatal(err)
	}
	for s := range total {
		whole.step(optWhole, s)
	}

	first := newTrainingRun(init)
	optFirst, err := NewAdamW(cfg, first.params)
	if err != nil {
		t.Fatal(err)
	}
	for s := range cut {
		first.step(optFirst, s)
	}
	blob, err := json.Marshal(optFirst.State())
	if err != nil {
		t.Fatal(err)
	}
	var saved AdamWState
	if err := json.Unmarshal(blob, &saved); err != nil {
		t.Fatal(err)
	}
	resumed := newTrainingRun(valuesOf(first.params))
	resumed.grads = first.grads // the gradient stream continues where it stopped
	optResumed, err := NewAdamW(cfg, resumed.params)
	if err != nil {
		t.Fatal(err)
	}
	if err := optResumed.SetState(saved); err != nil {
		t.Fatal(err)
	}
	for s := cut; s < total; s++ {
		resumed.step(optResumed, s)
	}

	for i := range whole.params {
		assertBitwise(t, "value "+whole.params[i].Name, resumed.params[i].Value, whole.params[i].Value)
	}
	a, b := optResumed.State(), optWhole.State()
	if a.Step != total || b.Step != total {
		t.Errorf("steps %d and %d, want %d", a.Step, b.Step, total)
	}
	for i := range a.Params {
		assertBitwise(t, "exp_avg "+a.Params[i].Name, a.Params[i].ExpAvg, b.Params[i].ExpAvg)
		assertBitwise(t, "exp_avg_sq "+a.Params[i].Name, a.Params[i].ExpAvgSq, b.Params[i].ExpAvgSq)
	}
}

func valuesOf(params []Param) [][]float32 {
	out := make([][]float32, len(params))
	for i, p := range params {
		out[i] = append([]float32(nil), p.Value...)
	}
	return out
}

func assertBitwise(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v bit for bit", what, i, got[i], want[i])
		}
	}
}

// TestAdamWStateIsACopy: State does not alias the live moments, SetState does not keep
// the caller's slices.
func TestAdamWStateIsACopy(t *testing.T) {
	run := newTrainingRun(randomValues(5))
	opt, err := NewAdamW(DefaultAdamW(), run.params)
	if err != nil {
		t.Fatal(err)
	}
	run.step(opt, 1)
	snap := opt.State()
	kept := append([]float32(nil), snap.Params[0].ExpAvg...)
	run.step(opt, 2)
	assertBitwise(t, "snapshot after a step", snap.Params[0].ExpAvg, kept)
	if err := opt.SetState(snap); err != nil {
		t.Fatal(err)
	}
	snap.Params[0].ExpAvg[0] = 42
	if got := opt.State().Params[0].ExpAvg[0]; got == 42 {
		t.Error("SetState kept the caller's slice")
	}
}

func TestAdamWSetStateErrors(t *testing.T) {
	run := newTrainingRun(randomValues(3, 2))
	opt, err := NewAdamW(DefaultAdamW(), run.params)
	if err != nil {
		t.Fatal(err)
	}
	run.step(opt, 1)
	good := opt.State()
	mutate := func(f func(s *AdamWState)) AdamWState {
		s := opt.State()
		f(&s)
		return s
	}
	tests := []struct {
		name    string
		state   AdamWState
		wantErr string
	}{
		{"reordered", mutate(func(s *AdamWState) { s.Params[0], s.Params[1] = s.Params[1], s.Params[0] }), ""},
		{"negative step", mutate(func(s *AdamWState) { s.Step = -1 }), "set AdamW state: step -1 is negative"},
		{"unknown name", mutate(func(s *AdamWState) { s.Params[1].Name = "z" }), `parameter "z" is not one of the optimizer's`},
		{"duplicate", mutate(func(s *AdamWState) { s.Params[1] = s.Params[0] }), `parameter "a" appears twice`},
		{"missing", mutate(func(s *AdamWState) { s.Params = s.Params[:1] }), `no moments for 1 parameter(s): ["b"]`},
		{"short exp_avg", mutate(func(s *AdamWState) { s.Params[0].ExpAvg = s.Params[0].ExpAvg[:2] }), `parameter "a": moments have 2 and 3 values, the parameter 3`},
		{"long exp_avg_sq", mutate(func(s *AdamWState) { s.Params[1].ExpAvgSq = append(s.Params[1].ExpAvgSq, 0) }), `moments have 2 and 3 values, the parameter 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Poison the moments of the bad states: a failed SetState must not have copied
			// any of them.
			if tt.wantErr != "" {
				for _, p := range tt.state.Params {
					for j := range p.ExpAvg {
						p.ExpAvg[j] = -1
					}
				}
			}
			err := opt.SetState(tt.state)
			checkErr(t, err, tt.wantErr)
			if err == nil {
				return
			}
			after := opt.State()
			if after.Step != good.Step {
				t.Errorf("step changed to %d by a failed SetState", after.Step)
			}
			for i := range after.Params {
				assertBitwise(t, "exp_avg after a failed SetState", after.Params[i].ExpAvg, good.Params[i].ExpAvg)
			}
		})
	}
}

// BenchmarkAdamWStep: one step over about 1M float32 values (the LoRA r=8 q/v adapters of
// Llama-3.2-1B hold 852k), in tensors of 16384 values like lora_A of a 2048-wide layer.
func BenchmarkAdamWStep(b *testing.B) {
	const tensors, size = 64, 16384
	rng := rand.New(rand.NewPCG(7, 8))
	params := make([]Param, tensors)
	for i := range params {
		params[i] = Param{Name: string(rune(0x4e00 + i)), Value: make([]float32, size), Grad: make([]float32, size)}
		for j := range params[i].Value {
			params[i].Value[j] = float32(rng.NormFloat64())
			params[i].Grad[j] = float32(rng.NormFloat64() * 1e-3)
		}
	}
	for _, wd := range []float64{0, 0.01} {
		name := "weight_decay=0"
		if wd != 0 {
			name = "weight_decay=0.01"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultAdamW()
			cfg.WeightDecay = wd
			opt, err := NewAdamW(cfg, params)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(tensors * size * 4))
			b.ResetTimer()
			for range b.N {
				opt.Step(1e-4)
			}
		})
	}
}

func BenchmarkClipGradNorm(b *testing.B) {
	const tensors, size = 64, 16384
	params := make([]Param, tensors)
	for i := range params {
		params[i] = Param{Name: string(rune(0x4e00 + i)), Value: make([]float32, size), Grad: make([]float32, size)}
		for j := range params[i].Grad {
			params[i].Grad[j] = 1e-4
		}
	}
	b.SetBytes(int64(tensors * size * 4))
	for range b.N {
		ClipGradNorm(params, 1)
	}
}
