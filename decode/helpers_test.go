package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// testTrie mirrors tokenize.Trie's semantics: sequences end with EOS, EOS is a child where a
// title ends, items sit on the node after EOS, children are sorted.
type testTrie struct {
	kids   []map[int]int
	items  [][]int
	sorted [][]int
	eos    int
}

func newTestTrie(seqs [][]int, items [][]int, eos int) *testTrie {
	t := &testTrie{kids: []map[int]int{{}}, items: [][]int{nil}, eos: eos}
	for i, s := range seqs {
		n := 0
		for _, tok := range s {
			c, ok := t.kids[n][tok]
			if !ok {
				c = len(t.kids)
				t.kids = append(t.kids, map[int]int{})
				t.items = append(t.items, nil)
				t.kids[n][tok] = c
			}
			n = c
		}
		t.items[n] = append(t.items[n], items[i]...)
	}
	t.sorted = make([][]int, len(t.kids))
	for n, m := range t.kids {
		for tok := range m {
			t.sorted[n] = append(t.sorted[n], tok)
		}
		sort.Ints(t.sorted[n])
		sort.Ints(t.items[n])
	}
	return t
}

func (t *testTrie) Root() int { return 0 }
func (t *testTrie) EOS() int  { return t.eos }
func (t *testTrie) Next(node, tok int) (int, bool) {
	c, ok := t.kids[node][tok]
	if !ok {
		return -1, false
	}
	return c, true
}
func (t *testTrie) Children(node int) []int { return t.sorted[node] }
func (t *testTrie) ItemsAt(node int) []int  { return t.items[node] }

// walk follows a token prefix; ok false if it leaves the trie.
func (t *testTrie) walk(prefix []int) (int, bool) {
	n := 0
	for _, tok := range prefix {
		c, ok := t.kids[n][tok]
		if !ok {
			return -1, false
		}
		n = c
	}
	return n, true
}

// toyLM is a pure function from a full sequence to logits over a vocabulary of V tokens:
// hash-seeded pseudo-random values, scaled so that distributions range from flat to peaked.
type toyLM struct {
	V     int
	seed  uint64
	scale float64
	quant bool // round logits to integers: many exact ties
}

func splitmix(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (m toyLM) logits(seq []int) []float32 {
	h := m.seed
	for _, t := range seq {
		h = h*1000003 ^ uint64(t+1)
		splitmix(&h)
	}
	out := make([]float32, m.V)
	for i := range out {
		u := float64(splitmix(&h)>>11) / (1 << 53)
		out[i] = float32((u*2 - 1) * m.scale)
		if m.quant {
			out[i] = float32(math.Round(float64(out[i])))
		}
	}
	return out
}

// randomCatalogue makes n items over tokens [0, V-1) (EOS = V-1) with short titles over a small
// alphabet, so that prefixes are shared, some titles are prefixes of others, some titles have
// one token and some are duplicated (several item ids on one sequence).
func randomCatalogue(r *rand.Rand, n, V, maxLen int) (*testTrie, [][]int) {
	eos := V - 1
	alpha := 2 + r.IntN(V-2)
	var seqs [][]int
	var items [][]int
	seen := map[string]int{}
	for id := 0; id < n; id++ {
		var s []int
		if len(seqs) > 0 && r.IntN(8) == 0 {
			s = append([]int(nil), seqs[r.IntN(len(seqs))]...) // duplicate title
			s = s[:len(s)-1]
		} else {
			l := 1 + r.IntN(maxLen)
			for k := 0; k < l; k++ {
				s = append(s, r.IntN(alpha))
			}
		}
		s = append(s, eos)
		key := fmt.Sprint(s)
		if k, ok := seen[key]; ok {
			items[k] = append(items[k], id)
			continue
		}
		seen[key] = len(seqs)
		seqs = append(seqs, s)
		items = append(items, []int{id})
	}
	return newTestTrie(seqs, items, eos), seqs
}

// seqLogProb scores a full generated sequence under a mode by walking the trie (brute force).
func seqLogProb(t *testTrie, lm func([]int) []float32, prompt, seq []int, mode Mode) float64 {
	sum := 0.0
	full := append([]int(nil), prompt...)
	for i, tok := range seq {
		node, _ := t.walk(seq[:i])
		allowedToks := t.Children(node)
		lg := lm(full)
		var z float64
		if mode == AfterSoftmax {
			z = logSumExp32(lg)
		} else {
			sub := make([]float32, len(allowedToks))
			for j, a := range allowedToks {
				sub[j] = lg[a]
			}
			z = logSumExp32(sub)
		}
		sum += float64(lg[tok]) - z
		full = append(full, tok)
	}
	return sum
}

type ranked struct {
	seq   []int
	sum   float64
	score float64
}

// bruteForce ranks every sequence of the trie by its normalised score (best first).
func bruteForce(t *testTrie, seqs [][]int, lm func([]int) []float32, prompt []int, mode Mode, lp float64) []ranked {
	out := make([]ranked, len(seqs))
	for i, s := range seqs {
		sum := seqLogProb(t, lm, prompt, s, mode)
		out[i] = ranked{seq: s, sum: sum, score: sum / math.Pow(float64(len(s)), lp)}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].score > out[b].score })
	return out
}

func key(s []int) string {
	var b strings.Builder
	for i, t := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, t)
	}
	return b.String()
}
