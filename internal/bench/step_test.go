package bench

import (
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime"
)

// BenchmarkTrainStep: one LoRA (q_proj, v_proj, r 8) training step on the `small` preset,
// batch 8 × 256, full-vocabulary logits at the last 20 tokens of each sequence, one thread.
// Reports forward and backward milliseconds; `bear bench step` adds FLOP rates and peak RSS.
//
//	go test ./internal/bench -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		b.Run(policy.String(), func(b *testing.B) {
			p, _ := hf.LookupPreset("small")
			dir := filepath.Join(b.TempDir(), "small")
			if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1}); err != nil {
				b.Fatal(err)
			}
			o := runtime.TrainOptions{Policy: policy, Model: runtime.ModelOptions{CacheDir: b.TempDir(), Session: runtime.SessionOptions{Threads: 1},
				LoRA: &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16}}}
			r, err := BenchmarkStep(dir, o, 8, 256, 20, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.ForwardSeconds*1e3, "fwd-ms")
			b.ReportMetric(r.BackwardSeconds*1e3, "bwd-ms")
			b.ReportMetric(r.ShareOfGemmRate, "of-gemm-rate")
		})
	}
}
