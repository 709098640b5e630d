package runtime

import (
	"github.com/bearrec/bear/onnx/autodiff"
	"os"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// BenchmarkForwardSmall: the `small` preset (4 layers, hidden 256, 8/2 heads, vocab 128 256),
// batch 8 × 256 tokens, logits at the last position of each sequence, all cores.
// Reports forward tokens per second.
//
//	go test ./runtime -run '^$' -bench ForwardSmall -benchtime 10x
func BenchmarkForwardSmall(b *testing.B) {
	benchmarkForward(b, "small", 8, 256, 0)
}

// BenchmarkForwardSmall1Thread is the same on one intra-op thread.
func BenchmarkForwardSmall1Thread(b *testing.B) {
	benchmarkForward(b, "small", 8, 256, 1)
}

func benchmarkForward(b *testing.B, preset string, batch, seq, threads int) {
	p, err := hf.LookupPreset(preset)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), preset)
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	m, err := Load(dir, ModelOptions{CacheDir: b.TempDir(), Logits: llama.LogitsFullVocab, Session: SessionOptions{Threads: threads, ProfilePrefix: os.Getenv("BEAR_ORT_PROFILE")}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	seqs := make([][]int64, batch)
	for i := range seqs {
		seqs[i] = make([]int64, seq)
		for t := range seqs[i] {
			seqs[i][t] = int64((i*7919 + t*104729) % p.Config.VocabSize)
		}
	}
	bt := NewBatch(seqs)
	index := make([]int64, batch)
	for i := range index {
		index[i] = bt.Index(i, seq-1)
	}
	if _, err := m.Logits(bt, index, nil, 0); err != nil { // warm-up: ORT plans memory on the first run
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Logits(bt, index, nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*seq*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkTrainStep: one LoRA (q_proj, v_proj, r 8) training step on the `small` preset,
// batch 8 × 256, full-vocabulary logits at the last 20 tokens of each sequence, one thread.
// Reports forward and backward milliseconds; `bear bench step` adds FLOP rates and peak RSS.
//
//	go test ./runtime -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		b.Run(policy.String(), func(b *testing.B) {
			p, _ := hf.LookupPreset("small")
			dir := filepath.Join(b.TempDir(), "small")
			if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1}); err != nil {
				b.Fatal(err)
			}
			o := TrainOptions{Policy: policy, Model: ModelOptions{CacheDir: b.TempDir(), Session: SessionOptions{Threads: 1},
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
