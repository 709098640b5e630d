package ortrun_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/ortrun"
)

// equivCase is an adapter with a rank or alpha pattern, the adapter without patterns (same r 8,
// lora_alpha 16, targets) that PEFT's semantics make equivalent to it, and a naive conversion
// that ignores the pattern: the equivalent must give the patterned adapter's model, the naive
// one must not (so the comparison can fail).
type equivCase struct {
	name                string
	patterned           *peft.Adapter
	equivalent, naive   *peft.Adapter
	mergeTol, logitsTol float64
}

var plainSpec = llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16}

// randomAdapter fills every LoRA matrix of spec with uniform values in [-0.2, 0.2).
func randomAdapter(spec llama.LoRASpec, cfg hf.Config, seed uint64) *peft.Adapter {
	rng := rand.New(rand.NewPCG(seed, 7))
	a := &peft.Adapter{Spec: spec, Weights: map[string][]float32{}}
	for _, in := range spec.Inputs(cfg) {
		w := make([]float32, in.Rows*in.Cols)
		for i := range w {
			w[i] = float32(rng.Float64()*0.4 - 0.2)
		}
		a.Weights[in.Name] = w
	}
	return a
}

// alphaCase: alpha_pattern {"q_proj": 64} scales q_proj by 64/8 = 8 instead of 16/8 = 2, which
// is the plain adapter with every q_proj B times 4. Powers of two scale float32 products and
// sums exactly, so both paths are bit-identical (tolerance 0).
func alphaCase(cfg hf.Config) equivCase {
	spec := plainSpec
	spec.AlphaPattern = []llama.AlphaPattern{{Key: "q_proj", Alpha: 64}}
	p := randomAdapter(spec, cfg, 1)
	eq := &peft.Adapter{Spec: plainSpec, Weights: map[string][]float32{}}
	for _, in := range plainSpec.Inputs(cfg) {
		w := append([]float32(nil), p.Weights[in.Name]...)
		if in.Module == "q_proj" && in.Which == "B" {
			for i := range w {
				w[i] *= 4
			}
		}
		eq.Weights[in.Name] = w
	}
	naive := &peft.Adapter{Spec: plainSpec, Weights: p.Weights}
	return equivCase{"alpha_pattern q_proj 64", p, eq, naive, 0, 0}
}

// rankCase: rank_pattern {"v_proj": 4} makes v_proj's A [4, in] and B [out, 4] with scaling
// 16/4 = 4. The rank-8 equivalent under scaling 16/8 = 2 has A's rows 0..3 from the pattern's A
// and rows 4..7 zero, and B's columns 0..3 twice the pattern's B; columns 4..7 meet the zero
// rows, so any values do (random here). The merge adds the same products plus exact zeros
// (tolerance 0); the graph's Gemms sum over 4 or 8 terms, which may round differently
// (tolerance 1e-5 on O(1) logits, float32 reassociation only).
func rankCase(cfg hf.Config) equivCase {
	spec := plainSpec
	spec.RankPattern = []llama.RankPattern{{Key: "v_proj", Rank: 4}}
	p := randomAdapter(spec, cfg, 2)
	eq, naive := randomAdapter(plainSpec, cfg, 3), randomAdapter(plainSpec, cfg, 3)
	for _, in := range plainSpec.Inputs(cfg) {
		src := p.Weights[in.Name]
		e, n := eq.Weights[in.Name], naive.Weights[in.Name]
		switch {
		case in.Module != "v_proj":
			copy(e, src)
			copy(n, src)
		case in.Which == "A": // [8, in]: rows 0..3 the pattern's, rows 4..7 zero
			clear(e[copy(e, src):])
			clear(n[copy(n, src):])
		default: // [out, 8] from [out, 4]
			for o := range in.Rows {
				for k := range 4 {
					e[o*8+k], n[o*8+k] = 2*src[o*4+k], src[o*4+k]
				}
			}
		}
	}
	return equivCase{"rank_pattern v_proj 4", p, eq, naive, 0, 1e-5}
}

func testModel(t *testing.T) (string, hf.Config) {
	t.Helper()
	p, err := hf.LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Config
	cfg.VocabSize = 96
	dir := filepath.Join(t.TempDir(), "base")
	if err := hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: 5, DType: hf.F32}); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// merge writes the checkpoint with a merged in, float32, and returns its folder.
func merge(t *testing.T, dir string, a *peft.Adapter) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "merged")
	if err := peft.MergeAdapter(dir, out, a, hf.F32); err != nil {
		t.Fatal(err)
	}
	return out
}

// mergedWeights merges a into the checkpoint and reads every weight back.
func mergedWeights(t *testing.T, dir string, a *peft.Adapter) map[string][]float32 {
	t.Helper()
	ck, err := hf.Open(merge(t, dir, a))
	if err != nil {
		t.Fatal(err)
	}
	ws := map[string][]float32{}
	for _, spec := range ck.Config.ExpectedWeights() {
		if ws[spec.Name], err = ck.Weights[spec.Name].ReadFloat32(); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func maxDiff(a, b map[string][]float32) float64 {
	worst := 0.0
	for name, x := range a {
		for i, v := range x {
			worst = math.Max(worst, math.Abs(float64(v-b[name][i])))
		}
	}
	return worst
}

// TestPatternMergeEquivalents: merging an adapter with alpha_pattern or rank_pattern gives the
// weights of its pattern-free equivalent (exactly: see alphaCase and rankCase), and not those of
// the naive conversion that ignores the pattern.
func TestPatternMergeEquivalents(t *testing.T) {
	dir, cfg := testModel(t)
	for _, c := range []equivCase{alphaCase(cfg), rankCase(cfg)} {
		got := mergedWeights(t, dir, c.patterned)
		if d := maxDiff(got, mergedWeights(t, dir, c.equivalent)); d > c.mergeTol {
			t.Errorf("%s: merged weights differ from the equivalent adapter's by %g, tolerance %g", c.name, d, c.mergeTol)
		}
		if d := maxDiff(got, mergedWeights(t, dir, c.naive)); d < 1e-3 {
			t.Errorf("%s: merged weights within %g of the naive conversion's: the pattern changed nothing", c.name, d)
		}
	}
}

// adapterLogits runs bear's forward graph (ONNX Runtime, float32) of the checkpoint with the
// adapter's LoRA inputs (none when a is nil) at every token of the batch.
func adapterLogits(t *testing.T, dir string, a *peft.Adapter, b ortrun.TokenBatch, index []int64) []float32 {
	t.Helper()
	o := ortrun.ModelOptions{CacheDir: filepath.Join(t.TempDir(), "cache"), SessionOptions: ortrun.SessionOptions{Threads: 2}}
	if a != nil {
		o.LoRA = &a.Spec
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ortrun.Load(ck, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if a != nil {
		if err := m.SetAdapter(a); err != nil {
			t.Fatal(err)
		}
	}
	out, err := m.Logits(b, index, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxDiff32(a, b []float32) float64 {
	return maxDiff(map[string][]float32{"": a}, map[string][]float32{"": b})
}

// TestPatternLogitsEquivalents: bear's forward pass through ONNX Runtime with an adapter that has
// alpha_pattern or rank_pattern gives the logits of its pattern-free equivalent (tolerances: see
// alphaCase and rankCase) and not those of the naive conversion (they differ by more than 1e-3),
// and the checkpoint with that adapter merged in gives its logits within 1e-5 (float32
// reassociation): the exporter and the merge give each module the same rank and scaling.
func TestPatternLogitsEquivalents(t *testing.T) {
	dir, cfg := testModel(t)
	b := ortrun.NewTokenBatch([][]int{{1, 5, 9, 33, 2, 71}, {7, 80, 41}})
	var index []int64
	for i, n := range b.Lengths {
		for j := range n {
			index = append(index, b.Index(i, j))
		}
	}
	for _, c := range []equivCase{alphaCase(cfg), rankCase(cfg)} {
		got := adapterLogits(t, dir, c.patterned, b, index)
		if d := maxDiff32(got, adapterLogits(t, dir, c.equivalent, b, index)); d > c.logitsTol {
			t.Errorf("%s: logits differ from the equivalent adapter's by %g, tolerance %g", c.name, d, c.logitsTol)
		}
		if d := maxDiff32(got, adapterLogits(t, dir, c.naive, b, index)); d < 1e-3 {
			t.Errorf("%s: logits within %g of the naive conversion's: the pattern changed nothing", c.name, d)
		}
		if d := maxDiff32(got, adapterLogits(t, merge(t, dir, c.patterned), nil, b, index)); d > 1e-5 {
			t.Errorf("%s: the merged checkpoint's logits differ from the adapter's by %g, tolerance 1e-5", c.name, d)
		}
	}
}
