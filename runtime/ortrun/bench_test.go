package ortrun

import (
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
//	go test ./runtime/ortrun -run '^$' -bench ForwardSmall -benchtime 10x
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
	m, err := Load(mustOpen(b, dir), ModelOptions{CacheDir: b.TempDir(), Logits: llama.LogitsFullVocab, SessionOptions: SessionOptions{Threads: threads, ProfilePrefix: os.Getenv("BEAR_ORT_PROFILE")}})
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
	bt := NewTokenBatch(seqs)
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
