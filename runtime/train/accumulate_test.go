package train

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/lossgrad"
)

// TestMicroBatchesGiveTheGroupGradient: one optimizer step computed with each norm group in a
// single pass and with the same groups cut into micro-batches of one sequence gives the same
// gradient, for every loss: the un-normalised micro-batch gradients add up and the group's
// normaliser divides once. Tolerance 1e-6 relative (float32 sums in another order, and each
// micro-batch padded to its own length). Dropout is off: its masks are drawn per micro-batch.
func TestMicroBatchesGiveTheGroupGradient(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	for _, kind := range []lossgrad.Kind{lossgrad.LML, lossgrad.MSL, lossgrad.BEAR} {
		t.Run(kind.String(), func(t *testing.T) {
			grads := map[int][][]float32{}
			for _, micro := range []int{4, 1} {
				o := smallRun(model, tok, filepath.Join(t.TempDir(), "run"), kind)
				o.Batch.Micro, o.LoRADropout = micro, 0
				j, err := newJob(&o)
				if err != nil {
					t.Fatal(err)
				}
				randomB(j, 3)
				if _, err := j.st.run(0); err != nil {
					t.Fatal(err)
				}
				for _, p := range j.st.params {
					grads[micro] = append(grads[micro], append([]float32(nil), p.Grad...))
				}
				j.close()
			}
			var num, den float64
			for i := range grads[4] {
				for k, want := range grads[4][i] {
					d := float64(grads[1][i][k] - want)
					num, den = num+d*d, den+float64(want)*float64(want)
				}
			}
			if den == 0 {
				t.Fatal("zero gradient: the test would prove nothing")
			}
			if e := math.Sqrt(num / den); e > 1e-6 {
				t.Errorf("micro-batches of 1 against groups in one pass: relative error %.3g", e)
			} else {
				t.Logf("relative difference %.2g", e)
			}
		})
	}
}

// randomB gives the LoRA B matrices non-zero values, so that A's gradients are not all zero.
func randomB(j *job, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	for _, in := range j.tr.Manifest.LoRAInputs {
		if in.Which == "B" {
			for i := range j.tr.Params[in.Name] {
				j.tr.Params[in.Name][i] = float32(0.05 * rng.NormFloat64())
			}
		}
	}
}
