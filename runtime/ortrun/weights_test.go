package ortrun

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// allSources are the weight sources a conformance case runs; the first is the reference.
var allSources = []WeightSource{WeightsConverted, WeightsMapped, WeightsWidened, WeightsInPlace}

// relDiff is max|a-b| / max|b|: the error relative to the reference's scale.
func relDiff[T float32 | float64](a, b []T) float64 {
	diff, scale := 0.0, 0.0
	for i := range b {
		diff = max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(b[i])))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// TestWeightSourcesAgreeLogits: on every forward fixture stored as bf16 and float32, the
// logits of weights mapped at their stored precision, widened in memory and read in place
// equal those of the float32 conversion (≤ 1e-6 relative: bf16 → float32 is exact, so only
// the kernels' summation order may differ), and no source but the conversion writes a cache.
func TestWeightSourcesAgreeLogits(t *testing.T) {
	for _, c := range loadGoldens(t) {
		for _, dt := range []hf.DType{hf.BF16, hf.F32} {
			t.Run(fmt.Sprintf("%s/%s", c.Name, dt), func(t *testing.T) {
				dir := writeCase(t, c, dt)
				b, index := caseBatch(c)
				var ref []float32
				for _, src := range allSources {
					cache := filepath.Join(t.TempDir(), "cache")
					o := ModelOptions{Weights: src, CacheDir: cache, SessionOptions: SessionOptions{Threads: 2}}
					m, err := Load(mustOpen(t, dir), o)
					if err != nil {
						t.Fatalf("%s: %v", src, err)
					}
					got := logits(t, m, b, index)
					m.Close()
					if _, err := os.Stat(cache); (err == nil) != (src == WeightsConverted && dt != hf.F32) {
						t.Errorf("%s: cache folder written: %v", src, err == nil)
					}
					if ref == nil {
						ref = got
						continue
					}
					if e := relDiff(got, ref); e > 1e-6 {
						t.Errorf("%s: logits differ from the float32 conversion by %.3g relative", src, e)
					}
				}
			})
		}
	}
}

// TestWeightSourcesAgreeGradients: LoRA gradients of a bf16 `tiny`-shaped checkpoint under both
// policies, in float32 and float64, equal the float32 conversion's (≤ 1e-6 relative), and the
// stash graphs keep the same residuals: the casts of the weights are recomputed, never stashed.
func TestWeightSourcesAgreeGradients(t *testing.T) {
	dir := tinyCheckpointAs(t, hf.BF16)
	b, index := trainBatch()
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		t.Run("float32/"+policy.String(), func(t *testing.T) { agreeGradients[float32](t, dir, policy, b, index) })
		t.Run("float64/"+policy.String(), func(t *testing.T) { agreeGradients[float64](t, dir, policy, b, index) })
	}
}

func agreeGradients[T ComputeFloat](t *testing.T, dir string, policy autodiff.Policy, b TokenBatch, index []int64) {
	var ref map[string][]T
	var refResiduals []string
	for _, src := range allSources {
		if src == WeightsWidened && dtypeOf[T]() != hf.F32 {
			continue // float32 copies: refused for float64 graphs (TestWeightSourceErrors)
		}
		o := TrainOptions{Policy: policy, Model: ModelOptions{LoRA: qvLoRA, Logits: llama.LogitsSubset, Weights: src, CacheDir: t.TempDir(), SessionOptions: SessionOptions{Threads: 2}}}
		tr, err := NewTrainer[T](mustOpen(t, dir), o)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, name := range slices.Sorted(maps.Keys(tr.Params)) {
			for i := range tr.Params[name] {
				tr.Params[name][i] = T(0.2 * rng.NormFloat64())
			}
		}
		subset := []int64{0, 13, 40, 279, 315, 791, 1093, 3938, 5030, 9822, 128001}
		l, err := tr.Forward(GraphInputs{Batch: b, Index: index, Subset: subset})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		cot := make([]T, len(l))
		for i := range cot {
			cot[i] = T(rng.NormFloat64())
		}
		grads, err := tr.Backward(cot)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got := map[string][]T{}
		for name, g := range grads {
			got[name] = slices.Clone(g)
		}
		residuals := tr.Manifest.Residuals
		tr.Close()
		if ref == nil {
			ref, refResiduals = got, residuals
			continue
		}
		if !slices.Equal(residuals, refResiduals) {
			t.Errorf("%s: stashes %d residuals, the float32 conversion %d", src, len(residuals), len(refResiduals))
		}
		for name, g := range got {
			if e := relDiff(g, ref[name]); e > 1e-6 {
				t.Errorf("%s: gradient of %s differs from the float32 conversion by %.3g relative", src, name, e)
			}
		}
	}
}

// TestMappedWeightsSharedAndReleased: the models of one process share one mapping of a
// checkpoint, which goes when the last of them closes.
func TestMappedWeightsSharedAndReleased(t *testing.T) {
	c := firstCase(t, "tied_gqa_llama3_rope")
	dir := writeCase(t, c, hf.BF16)
	count := func() int {
		residents.Lock()
		defer residents.Unlock()
		return len(residents.m)
	}
	before := count()
	o := ModelOptions{Weights: WeightsMapped, SessionOptions: SessionOptions{Threads: 1}}
	m1, err := Load(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Load(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	if m1.weights.resident != m2.weights.resident || count() != before+1 {
		t.Fatalf("two models of one checkpoint hold %d mappings", count()-before)
	}
	b, index := caseBatch(c)
	l1 := logits(t, m1, b, index)
	m1.Close()
	if l2 := logits(t, m2, b, index); !slices.Equal(l1, l2) {
		t.Fatal("the second model's logits changed when the first closed")
	}
	m2.Close()
	if count() != before {
		t.Fatal("the mapping outlived its last model")
	}
}

func TestWeightSourceErrors(t *testing.T) {
	c := firstCase(t, "tied_gqa_llama3_rope")
	_, err := Load(mustOpen(t, writeCase(t, c, hf.BF16)), ModelOptions{Weights: "copied"})
	if err == nil || err.Error() != `ortrun.ModelOptions.Weights "copied": want mapped, widened, in-place or converted` {
		t.Fatalf("unknown weight source: %v", err)
	}
	_, err = Load(mustOpen(t, writeCase(t, c, hf.BF16)), ModelOptions{Weights: WeightsWidened, DType: hf.F64})
	if err == nil || err.Error() != `ortrun.ModelOptions.Weights widened: the copies are float32, the graphs compute in F64` {
		t.Fatalf("widened weights for a float64 model: %v", err)
	}
}
