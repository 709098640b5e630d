package lossgrad

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/procstat"
)

// measure runs f b.N times and reports cpu-ms/op.
func measure(b *testing.B, f func()) {
	b.ResetTimer()
	c0 := procstat.CPUTime()
	for i := 0; i < b.N; i++ {
		f()
	}
	b.StopTimer()
	b.ReportMetric(float64(procstat.CPUTime()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// Realistic micro-batch: 16 sequences x 20 supervised positions.
const (
	benchSeqs      = 16
	benchPositions = 20
	benchVocab     = 128256
	benchAllowed   = 3000
)

func benchBatch(sizes []int, seed uint64) LogitSlices[float32] {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b LogitSlices[float32]
	total := 0
	for _, n := range sizes {
		total += n
	}
	b.Logits = make([]float32, 0, total)
	b.Offsets = append(make([]int, 0, len(sizes)+1), 0)
	for _, n := range sizes {
		for j := 0; j < n; j++ {
			b.Logits = append(b.Logits, float32(3*rng.NormFloat64()))
		}
		b.Offsets = append(b.Offsets, len(b.Logits))
		b.Targets = append(b.Targets, rng.IntN(n))
	}
	return b
}

func uniformSizes(n int) []int {
	s := make([]int, benchSeqs*benchPositions)
	for i := range s {
		s[i] = n
	}
	return s
}

// mixedSizes mimics a title trie: log-uniform allowed-set sizes between 1 and 3000.
func mixedSizes() []int {
	rng := rand.New(rand.NewPCG(11, 12))
	s := make([]int, benchSeqs*benchPositions)
	for i := range s {
		s[i] = int(math.Exp(rng.Float64() * math.Log(benchAllowed)))
	}
	return s
}

// parallelCopy copies src to dst with one goroutine per core, as the loss uses.
func parallelCopy(dst, src []float32) {
	w := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	chunk := (len(src) + w - 1) / w
	for i := 0; i < w; i++ {
		lo, hi := i*chunk, min((i+1)*chunk, len(src))
		wg.Add(1)
		go func() { copy(dst[lo:hi], src[lo:hi]); wg.Done() }()
	}
	wg.Wait()
}

// benchLoss runs the baseline copies and the losses on the same batch. SetBytes counts
// the logits read plus the gradients written, so MB/s compare directly with the copies.
func benchLoss(b *testing.B, b32 LogitSlices[float32], kinds ...Kind) {
	grad := make([]float32, len(b32.Logits))
	bytes := int64(8 * len(b32.Logits))
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(bytes)
		measure(b, func() { copy(grad, b32.Logits) })
	})
	b.Run("copy-parallel", func(b *testing.B) {
		b.SetBytes(bytes)
		measure(b, func() { parallelCopy(grad, b32.Logits) })
	})
	for _, kind := range kinds {
		b.Run(kind.String(), func(b *testing.B) {
			e, err := NewObjective[float32](DefaultConfig(kind))
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			diag := make([]Position, len(b32.Targets))
			b.SetBytes(bytes)
			b.ReportAllocs()
			measure(b, func() {
				if _, err := e.Compute(b32, grad, diag); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkLML: 16 x 20 positions x 128 256 logits (164 MB of float32 logits).
func BenchmarkLML(b *testing.B) {
	benchLoss(b, benchBatch(uniformSizes(benchVocab), 1), LML)
}

// BenchmarkAllowed3000: MSL and BEAR with 3 000 allowed tokens at every position.
func BenchmarkAllowed3000(b *testing.B) {
	benchLoss(b, benchBatch(uniformSizes(benchAllowed), 2), MSL, BEAR)
}

// BenchmarkAllowedMixed: MSL and BEAR with log-uniform allowed-set sizes in [1, 3000].
func BenchmarkAllowedMixed(b *testing.B) {
	benchLoss(b, benchBatch(mixedSizes(), 3), MSL, BEAR)
}
