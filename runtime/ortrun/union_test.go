package ortrun

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/llama"
	"google.golang.org/protobuf/proto"
)

// unionIDs is a vocabulary subset in no order, with repeats, spanning the vocabulary.
var unionIDs = []int64{3938, 128000, 17, 5, 128255, 0, 3938, 791, 99999, 5, 40, 128001, 64000}

const unionVocab = 128256

// TestSubsetLogitsMatchFullVocab: float64, `tiny` preset with non-zero LoRA, tied and untied
// heads: the LogitsSubset graph's logits [n, u] equal the full-vocabulary graph's logits
// gathered at the same ids within 1e-12 of the largest logit (the two Gemms sum the same 64
// products, possibly blocked differently).
func TestSubsetLogitsMatchFullVocab(t *testing.T) {
	b := newPairBatch(pairSequences, 4)
	for _, tied := range []bool{true, false} {
		dir := pairTiny(t, tied)
		opt := llama.Options{LoRA: qvLoRA}
		full := buildPair[float64](t, dir, opt, autodiff.Stash, 2, nil).logits(t, b)
		opt.Logits = llama.LogitsSubset
		sub := buildPair[float64](t, dir, opt, autodiff.Stash, 2, nil).logits(t, b.with(llama.VocabSubset, unionIDs))
		n, u := len(full)/unionVocab, len(unionIDs)
		picked := make([]float64, n*u)
		for i := range n {
			for j, id := range unionIDs {
				picked[i*u+j] = full[i*unionVocab+int(id)]
			}
		}
		if d := pairRelDiff(sub, picked); d > 1e-12 || len(sub) != n*u {
			t.Errorf("tied %v: %d subset logits differ from the gathered full logits by %.3g relative, want ≤ 1e-12", tied, len(sub), d)
		} else {
			t.Logf("tied %v: max relative difference %.3g", tied, d)
		}
	}
}

// TestSubsetGradientsMatchFullVocab: float64, tied and untied heads, both policies. The
// gradients of <logits, g> for the LogitsSubset graph equal those of the full-vocabulary graph
// for the cotangent that scatters g (repeated ids adding) into a zero [n, vocab] one, within
// 1e-10 relative per tensor: LoRA training (only the gradient to the hidden state flows through
// the frozen head), and full training, where the embedding (and lm_head) gradient also
// collects the head's rows of the subset.
func TestSubsetGradientsMatchFullVocab(t *testing.T) {
	b := newPairBatch(pairSequences, 4)
	n, u := int(b.in[llama.LogitIndex].Shape[0]), len(unionIDs)
	rng := rand.New(rand.NewPCG(5, 6))
	g := make([]float64, n*u)
	scattered := make([]float64, n*unionVocab)
	for i := range n {
		for j, id := range unionIDs {
			g[i*u+j] = rng.NormFloat64()
			scattered[i*unionVocab+int(id)] += g[i*u+j]
		}
	}
	for _, c := range []struct {
		name string
		opt  llama.Options
	}{
		{"lora", llama.Options{LoRA: qvLoRA}},
		{"full", llama.Options{WeightsAsInputs: true}},
	} {
		for _, tied := range []bool{true, false} {
			dir := pairTiny(t, tied)
			for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
				t.Run(fmt.Sprintf("%s/tied=%v/%s", c.name, tied, policy), func(t *testing.T) {
					if c.name == "full" && testing.Short() {
						t.Skip("float64 full-model gradients take a few seconds")
					}
					want := buildPair[float64](t, dir, c.opt, policy, 2, nil).gradients(t, b, scattered)
					opt := c.opt
					opt.Logits = llama.LogitsSubset
					got := buildPair[float64](t, dir, opt, policy, 2, nil).gradients(t, b.with(llama.VocabSubset, unionIDs), g)
					worst, at := 0.0, ""
					for name, w := range want {
						if d := pairRelDiff(got[name], w); d > worst || math.IsNaN(d) {
							worst, at = d, name
						}
					}
					if !(worst <= 1e-10) || len(got) != len(want) {
						t.Errorf("%d gradients (want %d); worst relative difference %.3g at %s, want ≤ 1e-10", len(got), len(want), worst, at)
					}
					t.Logf("%d gradients, worst relative difference %.3g (%s)", len(got), worst, at)
				})
			}
		}
	}
}

// TestGatherGradientRepeatedRowsThreads: the gradient of a Gather of weight rows with repeated,
// unsorted indices sums every update, on two threads with enough work for ONNX Runtime to
// split it (its ScatterND lost whole updates here before autodiff summed repeated rows first).
// float64; the sums equal Go's within 1e-12 relative.
func TestGatherGradientRepeatedRowsThreads(t *testing.T) {
	const rows, width, n = 300, 512, 4096
	g := builder.New("gather")
	w := g.Input("w", builder.Float64, rows, width)
	idx := g.Input("idx", builder.Int64, n)
	g.Output(g.Gather(w, idx, 0), "y")
	res, err := autodiff.Differentiate(g, "y", []string{"w"}, autodiff.Stash)
	if err != nil {
		t.Fatal(err)
	}
	bb, _ := proto.Marshal(res.Backward.Model("test"))
	s, err := NewSession(bb, t.TempDir(), pairNames(res.Inputs), pairNames(res.Grads), SessionOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(8, 9))
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(rng.IntN(12)) // 12 rows share 4096 updates
		if i%7 == 0 {
			ids[i] = int64(rng.IntN(rows)) - rows // negative indices count from the end
		}
	}
	cot := pairRandom[float64](rng, 1, n, width)
	want := make([]float64, rows*width)
	for i, id := range ids {
		r := (int(id) + rows) % rows
		for j := range width {
			want[r*width+j] += cot.Data.([]float64)[i*width+j]
		}
	}
	in := map[string]Tensor{"idx": {[]int64{n}, ids}, autodiff.GradName("y"): cot}
	for range 3 {
		got := NewTensorLike([]float64(nil), []int64{rows, width})
		if err := s.RunNamed(in, map[string]Tensor{autodiff.GradName("w"): got}); err != nil {
			t.Fatal(err)
		}
		if d := pairRelDiff(got.Data.([]float64), want); d > 1e-12 {
			t.Fatalf("scattered gradient differs from Go's sums by %.3g relative, want ≤ 1e-12", d)
		}
	}
}
