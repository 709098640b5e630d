package decode

import (
	"math/rand/v2"
	"testing"
)

// benchScorer costs (almost) nothing: candidate logits come from a fixed random pool at an
// offset derived from the row's history, into reused buffers, so a benchmark measures the
// search's own work (top-2B selection, bookkeeping, trie walks, row assembly).
type benchScorer struct {
	pool  []float32
	keys  []uint64 // per current row
	nkeys []uint64
	out   []Scores
	rows  int
	calls int
}

func (s *benchScorer) fill(cands [][]int) []Scores {
	if cap(s.out) < len(cands) {
		s.out = make([]Scores, len(cands), 2*len(cands))
	}
	s.out = s.out[:len(cands)]
	for r, c := range cands {
		off := int(s.keys[r] % uint64(len(s.pool)-len(c)))
		s.out[r] = Scores{Logits: s.pool[off : off+len(c)], LogZ: 12}
	}
	s.rows += len(cands)
	s.calls++
	return s.out
}

func (s *benchScorer) Start(prompts [][]int, cands [][]int) ([]Scores, error) {
	s.keys = s.keys[:0]
	for i := range prompts {
		s.keys = append(s.keys, uint64(i)*0x9e3779b97f4a7c15+1)
	}
	return s.fill(cands), nil
}

func (s *benchScorer) Step(parents, tokens []int, cands [][]int) ([]Scores, error) {
	s.nkeys = s.nkeys[:0]
	for r, p := range parents {
		k := s.keys[p]*31 + uint64(tokens[r]) + 7
		splitmix(&k)
		s.nkeys = append(s.nkeys, k)
	}
	s.keys, s.nkeys = s.nkeys, s.keys
	return s.fill(cands), nil
}

// benchCatalogue: n titles of 4..20 tokens over a 128k vocabulary with Zipf-like token choice,
// so the first levels are wide (hundreds of children) and deeper ones narrow, as with real
// titles.
func benchCatalogue(n int) *testTrie {
	r := rand.New(rand.NewPCG(1, 1))
	z := rand.NewZipf(r, 1.1, 3, 128000)
	eos := 128001
	seqs := make([][]int, n)
	items := make([][]int, n)
	for i := range seqs {
		l := 4 + r.IntN(17)
		s := make([]int, 0, l+1)
		s = append(s, 1) // the opening quote
		for k := 1; k < l; k++ {
			s = append(s, int(z.Uint64())+2)
		}
		seqs[i] = append(s, eos)
		items[i] = []int{i}
	}
	return newTestTrie(seqs, items, eos)
}

func benchSearch(b *testing.B, mode Mode, users int) {
	tr := benchCatalogue(10000)
	r := rand.New(rand.NewPCG(2, 2))
	pool := make([]float32, 1<<16)
	for i := range pool {
		pool[i] = float32(r.NormFloat64() * 3)
	}
	sc := &benchScorer{pool: pool}
	prompts := make([][]int, users)
	for i := range prompts {
		prompts[i] = []int{i}
	}
	cfg := DefaultConfig()
	cfg.Mode = mode
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Search(sc, tr, prompts, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds())
	b.ReportMetric(ns/float64(sc.rows), "ns/row")
	b.ReportMetric(ns/float64(sc.calls), "ns/call")
	b.ReportMetric(float64(sc.rows)/float64(sc.calls), "rows/call")
}

// BenchmarkSearch measures the search's own cost per scorer row and per scorer call (one
// decoding step of the whole batch) with 32 users x 10 beams and a free scorer:
//
//	go test -run '^$' -bench Search -benchtime 20x ./decode/
func BenchmarkSearchAfterSoftmax32(b *testing.B)  { benchSearch(b, AfterSoftmax, 32) }
func BenchmarkSearchBeforeSoftmax32(b *testing.B) { benchSearch(b, BeforeSoftmax, 32) }
func BenchmarkSearchAfterSoftmax8(b *testing.B)   { benchSearch(b, AfterSoftmax, 8) }
