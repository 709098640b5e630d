package ortrun

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/procstat"
	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// dropoutOutputs returns, for every LoRA module, its keep mask, its input x and its dropped
// input as extra forward outputs "mask.m", "x.m", "dropped.m" (found from the mask: the Where
// that reads it, and the Mul that scales x).
func dropoutOutputs(g *builder.Graph, masks []builder.Value) []builder.Value {
	producer := map[string][]string{}
	for _, n := range g.Proto().Node {
		for _, o := range n.Output {
			producer[o] = n.Input
		}
	}
	var out []builder.Value
	for m, mask := range masks {
		for _, n := range g.Proto().Node {
			if n.GetOpType() != "Where" || n.Input[0] != mask.Name {
				continue
			}
			x, _ := g.Lookup(producer[n.Input[1]][0])
			dropped, _ := g.Lookup(n.Output[0])
			out = append(out, g.Output(mask, fmt.Sprint("mask.", m)), g.Output(x, fmt.Sprint("x.", m)),
				g.Output(dropped, fmt.Sprint("dropped.", m)))
		}
	}
	return out
}

// TestDropoutMaskInGraph: the masks the forward graph computes equal llama.DropoutMask bit for
// bit for every module and for seeds of either sign and beyond 2^31; the graph's dropped input
// is exactly x·(1/(1-p)) where kept and 0 elsewhere; masks differ between modules and seeds;
// on 4 × 1024 tokens (262 144 elements or more per module) the keep rate is within 1% of 1-p.
// down_proj (input width 128) exercises modules narrower than the widest one.
func TestDropoutMaskInGraph(t *testing.T) {
	const p = 0.1
	seqs := make([][]int64, 4)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range seqs {
		seqs[i] = make([]int64, 1024-5*i)
		for j := range seqs[i] {
			seqs[i][j] = int64(rng.IntN(128256))
		}
	}
	b := newPairBatch(seqs, 1)
	lora := &llama.LoRASpec{Targets: []string{"q_proj", "v_proj", "down_proj"}, Rank: 4, Alpha: 8}
	pg := buildPair[float64](t, pairTiny(t, true), llama.Options{LoRA: lora, LoRADropout: p}, autodiff.Stash, 2, dropoutOutputs)
	rows, scale := b.batch*b.seq, 1/(1-p)
	seen := map[string]int{}
	for _, seed := range []int64{12345, -7, 1<<40 + 3} {
		out := pg.forward(t, b.with(llama.DropoutSeed, []int64{seed}))
		for m := range 6 {
			got := out[fmt.Sprint("mask.", m)].Data.([]bool)
			cols := len(got) / rows
			if want := llama.DropoutMask(seed, m, rows, cols, p); !slices.Equal(got, want) {
				t.Fatalf("seed %d, module %d: the graph's mask differs from DropoutMask", seed, m)
			}
			kept := 0
			x, dropped := out[fmt.Sprint("x.", m)].Data.([]float64), out[fmt.Sprint("dropped.", m)].Data.([]float64)
			for i, k := range got {
				want := 0.0
				if k {
					kept++
					want = x[i] * scale
				}
				if dropped[i] != want {
					t.Fatalf("seed %d, module %d, element %d: dropped input %g, want %g", seed, m, i, dropped[i], want)
				}
			}
			if rate := float64(kept) / float64(len(got)); math.Abs(rate-(1-p)) > 0.01*(1-p) {
				t.Errorf("seed %d, module %d: keep rate %.4f, want %.4f ± 1%%", seed, m, rate, 1-p)
			}
			key := make([]byte, len(got))
			for i, k := range got {
				if k {
					key[i] = 1
				}
			}
			seen[string(key)]++
		}
	}
	if len(seen) != 18 {
		t.Errorf("%d distinct masks over 3 seeds × 6 modules, want 18", len(seen))
	}
}

// TestDropoutGradients: float64, `tiny`, non-zero LoRA, dropout 0.3 with a fixed seed: the
// directional derivative of <logits, w> matches central differences within 1e-6 under both
// policies (see pairDirectional for the stencil). The same seed gives the same
// gradients, another seed other ones. Under Stash, dropout adds exactly one bool residual per
// module (the mask) and backward does not read the seed; under Recompute backward reads it.
func TestDropoutGradients(t *testing.T) {
	dir := pairTiny(t, true)
	b := newPairBatch(pairSequences, 4)
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		t.Run(policy.String(), func(t *testing.T) {
			pg := buildPair[float64](t, dir, llama.Options{LoRA: qvLoRA, LoRADropout: 0.3}, policy, 2, nil)
			plain := buildPair[float64](t, dir, llama.Options{LoRA: qvLoRA}, policy, 2, nil)
			checkDropoutResiduals(t, pg, plain, policy)
			seeded := b.with(llama.DropoutSeed, []int64{2024})
			if e := pairDirectional(t, pg, seeded, 11); e > 1e-6 {
				t.Errorf("directional derivative vs central difference: relative error %.3g, want ≤ 1e-6", e)
			} else {
				t.Logf("relative error %.3g", e)
			}
			w := make([]float64, len(pg.logits(t, seeded)))
			for i := range w {
				w[i] = math.Sin(float64(i))
			}
			first := pg.gradients(t, seeded, w)["lora.0.q_proj.A"]
			first = append([]float64(nil), first...)
			again := pg.gradients(t, seeded, w)["lora.0.q_proj.A"]
			other := pg.gradients(t, b.with(llama.DropoutSeed, []int64{2025}), w)["lora.0.q_proj.A"]
			if !slices.Equal(first, again) || pairRelDiff(other, first) < 1e-3 {
				t.Errorf("same seed: difference %.3g (want 0); other seed: %.3g (want ≥ 1e-3)", pairRelDiff(again, first), pairRelDiff(other, first))
			}
		})
	}
}

// checkDropoutResiduals compares the residuals and backward inputs of the dropout graph pg and
// the same graph without dropout.
func checkDropoutResiduals(t *testing.T, pg, plain *pairGraphs[float64], policy autodiff.Policy) {
	t.Helper()
	var bools, floats int
	for _, r := range pg.res.Residuals {
		if r.DType == builder.Bool && r.Rank() == 2 {
			bools++
		} else if builder.IsFloat(r.DType) {
			floats++
		}
	}
	plainFloats := 0
	for _, r := range plain.res.Residuals {
		if builder.IsFloat(r.DType) {
			plainFloats++
		}
	}
	readsSeed := slices.Contains(pairNames(pg.res.Inputs), llama.DropoutSeed)
	wantBools := map[autodiff.Policy]int{autodiff.Stash: 4, autodiff.Recompute: 0}[policy]
	if bools != wantBools || floats != plainFloats || readsSeed != (policy == autodiff.Recompute) {
		t.Errorf("%d mask residuals (want %d), %d float residuals (without dropout %d), backward reads the seed: %v",
			bools, wantBools, floats, plainFloats, readsSeed)
	}
}

// pairDirectional compares Σ grad·d with the central difference of L = <logits, w> along a
// random direction d of the trainable inputs; it returns the relative error.
func pairDirectional(t *testing.T, pg *pairGraphs[float64], b pairBatch, seed uint64) float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	w := make([]float64, len(pg.logits(t, b)))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	grads := pg.gradients(t, b, w)
	analytic := 0.0
	dir := map[string][]float64{}
	for _, name := range pg.wrt {
		d := pairRandom[float64](rng, 1, int64(len(grads[name]))).Data.([]float64)
		for i, g := range grads[name] {
			analytic += g * d[i]
		}
		dir[name] = d
	}
	loss := func(eps float64) float64 {
		for name, d := range dir {
			p := pg.params[name].Data.([]float64)
			for i := range p {
				p[i] += eps * d[i]
			}
		}
		l := pg.logits(t, b)
		for name, d := range dir {
			p := pg.params[name].Data.([]float64)
			for i := range p {
				p[i] -= eps * d[i]
			}
		}
		s := 0.0
		for i, v := range l {
			s += v * w[i]
		}
		return s
	}
	// Fourth-order central difference: truncation ~eps⁴ lets eps be 1e-4, which keeps the
	// rounding error of the loss differences ten times lower than eps 1e-5 would.
	const eps = 1e-4
	fd := (8*(loss(eps)-loss(-eps)) - (loss(2*eps) - loss(-2*eps))) / (12 * eps)
	return math.Abs(analytic-fd) / math.Abs(fd)
}

// BenchmarkLoRADropout: the cost of LoRA dropout in a training step: `small` preset, batch
// 8 × 256, LoRA r 8 on q_proj and v_proj, full-vocabulary logits at the last 20 tokens of each
// sequence (the setup of BenchmarkTrainStep), float32, one thread. Steps without dropout and
// with p = 0.05 alternate, so that a change in the machine's load hits both alike. Reports
// forward and backward milliseconds of process CPU time (one ORT thread: on a busy machine CPU
// time stays comparable where wall time does not) and the step's overhead in percent.
//
//	go test ./runtime/ortrun -run '^$' -bench LoRADropout -benchtime 10x
func BenchmarkLoRADropout(b *testing.B) {
	p, _ := hf.LookupPreset("small")
	dir := filepath.Join(b.TempDir(), "small")
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	seqs := make([][]int64, 8)
	for i := range seqs {
		seqs[i] = make([]int64, 256)
		for j := range seqs[i] {
			seqs[i][j] = int64(rng.IntN(p.Config.VocabSize))
		}
	}
	batch := newPairBatch(seqs, 20).with(llama.DropoutSeed, []int64{42})
	cot := pairRandom[float32](rng, 1e-3, 160*int64(p.Config.VocabSize)).Data.([]float32)
	lora := &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16}
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		b.Run(policy.String(), func(b *testing.B) {
			var graphs [2]*pairGraphs[float32]
			var fwd, bwd [2]time.Duration
			for i, dropout := range []float64{0, 0.05} {
				graphs[i] = buildPair[float32](b, dir, llama.Options{LoRA: lora, LoRADropout: dropout}, policy, 1, nil)
			}
			for it := -1; it < b.N; it++ { // one warm-up step each
				for i, pg := range graphs {
					c0 := procstat.CPUTime()
					fo := pg.forward(b, batch)
					c1 := procstat.CPUTime()
					pg.backward(b, batch, fo, cot)
					if it >= 0 {
						fwd[i], bwd[i] = fwd[i]+c1-c0, bwd[i]+procstat.CPUTime()-c1
					}
				}
			}
			per := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(b.N) }
			b.ReportMetric(per(fwd[0]), "fwd-cpu-ms")
			b.ReportMetric(per(bwd[0]), "bwd-cpu-ms")
			b.ReportMetric(per(fwd[1]), "dropout-fwd-cpu-ms")
			b.ReportMetric(per(bwd[1]), "dropout-bwd-cpu-ms")
			b.ReportMetric(100*(per(fwd[1]+bwd[1])/per(fwd[0]+bwd[0])-1), "overhead-%")
		})
	}
}
