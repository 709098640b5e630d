package decode

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Scores are compared to 1e-9 absolute: both sides sum the same float64 log-probabilities, the
// reference only computes each log-softmax separately (same max-shifted formula).
const tol = 1e-9

// checkingScorer wraps a SeqScorer and checks that the search offers exactly the trie's
// allowed tokens for every row's generated prefix, and counts rows.
type checkingScorer struct {
	*SeqScorer
	t       *testTrie
	plen    []int // prompt length of each current row
	rows    int
	calls   int
	maxRows int
	err     error
}

func (c *checkingScorer) check(cands [][]int) {
	for r, row := range c.SeqScorer.rows {
		gen := row[c.plen[r]:]
		n, ok := c.t.walk(gen)
		want := []int{c.t.eos}
		if ok && len(c.t.Children(n)) > 0 {
			want = c.t.Children(n)
		}
		if !ok || !slices.Equal(want, cands[r]) {
			c.err = fmt.Errorf("row %d gen %v: cands %v, want %v", r, gen, cands[r], want)
		}
	}
	c.rows += len(cands)
	c.calls++
	c.maxRows = max(c.maxRows, len(cands))
}

func (c *checkingScorer) Start(prompts [][]int, cands [][]int) ([]Scores, error) {
	c.plen = c.plen[:0]
	for _, p := range prompts {
		c.plen = append(c.plen, len(p))
	}
	s, err := c.SeqScorer.Start(prompts, cands)
	c.check(cands)
	return s, err
}

func (c *checkingScorer) Step(parents, tokens []int, cands [][]int) ([]Scores, error) {
	pl := make([]int, len(parents))
	for r, p := range parents {
		pl[r] = c.plen[p]
	}
	c.plen = pl
	s, err := c.SeqScorer.Step(parents, tokens, cands)
	c.check(cands)
	return s, err
}

func TestSearchMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := 0
	for trial := 0; trial < 600; trial++ {
		V := 3 + r.IntN(8)
		tr, seqs := randomCatalogue(r, 1+r.IntN(40), V, 1+r.IntN(5))
		ix := NewIndex(tr)
		lm := toyLM{V: V, seed: r.Uint64(), scale: []float64{0.3, 2, 6, 0, 2}[r.IntN(5)], quant: r.IntN(4) == 0}
		cfg := DefaultConfig()
		cfg.Beams = []int{1, 2, 3, 4, 6, 10}[r.IntN(6)]
		cfg.Return = cfg.Beams
		if r.IntN(4) == 0 {
			cfg.Return = 1 + r.IntN(cfg.Beams)
		}
		cfg.Mode = Mode(r.IntN(2))
		cfg.Stop = StopRule(r.IntN(2))
		cfg.LengthPenalty = []float64{1, 1, 0, 0.5, 2}[r.IntN(5)]
		maxNew := ix.Depth() + 3
		if r.IntN(5) == 0 {
			cfg.MaxNewTokens = 1 + r.IntN(ix.Depth())
			maxNew = cfg.MaxNewTokens
		}
		users := 1 + r.IntN(6)
		prompts := make([][]int, users)
		for i := range prompts {
			prompts[i] = []int{1000 + i, r.IntN(50)}
		}
		sc := &checkingScorer{SeqScorer: newFuncScorer(lm.logits), t: tr}
		got, err := Search(sc, tr, prompts, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sc.err != nil {
			t.Fatal(sc.err)
		}
		if sc.maxRows > users*cfg.Beams {
			t.Fatalf("%d rows in one call for %d users x %d beams", sc.maxRows, users, cfg.Beams)
		}
		for u := range prompts {
			ref := refSearch(tr, lm.logits, V, prompts[u], cfg.Beams, cfg.Return, cfg.Mode, cfg.LengthPenalty, cfg.Stop, maxNew)
			var real []refHyp
			for _, h := range ref.hyps {
				if h.score > -1e7 {
					real = append(real, h)
				}
			}
			desc := fmt.Sprintf("trial %d user %d (V %d, %d seqs, cfg %+v)", trial, u, V, len(seqs), cfg)
			if len(got[u].Hyps) != len(real) {
				t.Fatalf("%s: %d hypotheses, reference %d real of %d: got %v ref %v", desc, len(got[u].Hyps), len(real), len(ref.hyps), got[u].Hyps, ref.hyps)
			}
			for k, h := range got[u].Hyps {
				if !slices.Equal(h.Tokens, real[k].seq) || math.Abs(h.Score-real[k].score) > tol {
					t.Fatalf("%s: hyp %d = %v %.12f, reference %v %.12f", desc, k, h.Tokens, h.Score, real[k].seq, real[k].score)
				}
				n, _ := tr.walk(h.Tokens)
				if cfg.MaxNewTokens == 0 && !slices.Equal(h.Items, tr.ItemsAt(n)) {
					t.Fatalf("%s: items %v at %v, want %v", desc, h.Items, h.Tokens, tr.ItemsAt(n))
				}
				if math.Abs(h.Score-h.SumLogProb/math.Pow(float64(len(h.Tokens)), cfg.LengthPenalty)) > tol {
					t.Fatalf("%s: score %v inconsistent with sum %v over %d tokens", desc, h.Score, h.SumLogProb, len(h.Tokens))
				}
			}
			cases++
		}
	}
	t.Logf("%d prompts compared", cases)
}

// With B at least the number of sequences nothing is pruned: every item comes back, ordered by
// the normalised score, equal to brute-force enumeration.
func TestSearchAllItemsWhenBeamCoversCatalogue(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 100; trial++ {
		V := 3 + r.IntN(8)
		tr, seqs := randomCatalogue(r, 1+r.IntN(15), V, 1+r.IntN(4))
		lm := toyLM{V: V, seed: r.Uint64(), scale: 3}
		for _, mode := range []Mode{AfterSoftmax, BeforeSoftmax} {
			cfg := DefaultConfig()
			cfg.Mode = mode
			cfg.Beams = len(seqs) + r.IntN(3)
			cfg.Return = cfg.Beams
			prompts := [][]int{{7}, {8, 9}}
			got, err := Search(newFuncScorer(lm.logits), tr, prompts, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for u, p := range prompts {
				want := bruteForce(tr, seqs, lm.logits, p, mode, 1)
				if len(got[u].Hyps) != len(want) {
					t.Fatalf("trial %d %v: %d hypotheses for %d sequences", trial, mode, len(got[u].Hyps), len(want))
				}
				for k, h := range got[u].Hyps {
					if !slices.Equal(h.Tokens, want[k].seq) || math.Abs(h.Score-want[k].score) > tol {
						t.Fatalf("trial %d %v rank %d: %v %.12f, brute force %v %.12f", trial, mode, k, h.Tokens, h.Score, want[k].seq, want[k].score)
					}
				}
			}
		}
	}
}

// A hand-made trie: prefix titles, a duplicate title and a one-token title, with logits chosen
// so that the outcome can be checked by hand.
func TestSearchHandMade(t *testing.T) {
	const eos = 9
	// items: 0 "1 2", 1 "1 2 3" (prefix title), 2 "4" (one token), 3 "1 2" duplicate of 0, 4 "1 5"
	tr := newTestTrie([][]int{{1, 2, eos}, {1, 2, 3, eos}, {4, eos}, {1, 5, eos}}, [][]int{{0, 3}, {1}, {2}, {4}}, eos)
	lm := func(seq []int) []float32 {
		l := make([]float32, 10)
		for i := range l {
			l[i] = -5
		}
		gen := seq[1:]
		switch {
		case len(gen) == 0:
			l[1], l[4] = 2, 1
		case len(gen) == 1 && gen[0] == 1:
			l[2], l[5] = 2, 0
		case len(gen) == 2 && gen[1] == 2:
			l[eos], l[3] = 1, 1
		default:
			l[eos], l[3] = 3, 0
		}
		return l
	}
	for _, mode := range []Mode{AfterSoftmax, BeforeSoftmax} {
		cfg := DefaultConfig()
		cfg.Mode = mode
		got, err := Search(newFuncScorer(lm), tr, [][]int{{0}}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		hs := got[0].Hyps
		if len(hs) != 4 {
			t.Fatalf("%v: %d hypotheses, want the 4 sequences", mode, len(hs))
		}
		seen := map[int]bool{}
		for _, h := range hs {
			for _, it := range h.Items {
				seen[it] = true
			}
			if h.Tokens[len(h.Tokens)-1] != eos {
				t.Fatalf("%v: %v does not end with EOS", mode, h.Tokens)
			}
		}
		for it := 0; it < 5; it++ {
			if !seen[it] {
				t.Fatalf("%v: item %d missing from %v", mode, it, hs)
			}
		}
		if r0, r3 := Rank(hs, 0), Rank(hs, 3); r0 != r3 || r0 < 0 {
			t.Fatalf("%v: duplicate titles at ranks %d and %d", mode, r0, r3)
		}
		// before softmax the single-token title "4" has log p = log softmax(2,1)[1] over 2 tokens
		// then 0 for its EOS (the only child): score = (1 - lse(2,1)) / 2
		if mode == BeforeSoftmax {
			want := (1 - math.Log(math.Exp(2)+math.Exp(1))) / 2
			h := hs[Rank(hs, 2)]
			if math.Abs(h.Score-want) > 1e-6 {
				t.Fatalf("one-token title score %v, want %v", h.Score, want)
			}
		}
	}
}

// Users that finish early stop costing rows; results do not depend on batching.
func TestSearchBatchingIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	V := 9
	tr, _ := randomCatalogue(r, 60, V, 5)
	lm := toyLM{V: V, seed: 11, scale: 4}
	prompts := make([][]int, 12)
	for i := range prompts {
		prompts[i] = []int{2000 + i}
	}
	cfg := DefaultConfig()
	cfg.Beams = 4
	all, err := Search(newFuncScorer(lm.logits), tr, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		one, err := Search(newFuncScorer(lm.logits), tr, [][]int{p}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(one[0].Hyps) != fmt.Sprint(all[i].Hyps) {
			t.Fatalf("prompt %d: batched %v, alone %v", i, all[i].Hyps, one[0].Hyps)
		}
	}
}

type errScorer struct{ SeqScorer }

func (errScorer) Step([]int, []int, [][]int) ([]Scores, error) { return nil, fmt.Errorf("boom") }

func TestSearchErrors(t *testing.T) {
	tr := newTestTrie([][]int{{1, 2, 3}, {1, 3}}, [][]int{{0}, {1}}, 3)
	lm := toyLM{V: 4, seed: 1, scale: 1}
	if _, err := Search(&errScorer{*newFuncScorer(lm.logits)}, tr, [][]int{{0}}, DefaultConfig()); err == nil {
		t.Fatal("scorer error not reported")
	}
	bad := &SeqScorer{Score: func(seqs [][]int, cands [][]int) ([]Scores, error) {
		return make([]Scores, len(seqs)), nil // no logits
	}}
	if _, err := Search(bad, tr, [][]int{{0}}, DefaultConfig()); err == nil {
		t.Fatal("logit count mismatch not reported")
	}
	cfg := DefaultConfig()
	cfg.Beams = 0
	if _, err := Search(newFuncScorer(lm.logits), tr, [][]int{{0}}, cfg); err == nil {
		t.Fatal("zero beams accepted")
	}
}

// TestSearchNonFinite: a NaN or infinite logit (or normaliser, where the mode reads it) at any
// step stops the search with a *NonFiniteError naming the token, in both constraint modes,
// instead of skipping the token and returning short or empty lists.
func TestSearchNonFinite(t *testing.T) {
	tr := newTestTrie([][]int{{1, 2, 3}, {1, 3}, {2, 1}}, [][]int{{0}, {1}, {2}}, 3)
	lm := toyLM{V: 4, seed: 1, scale: 1}
	for _, c := range []struct {
		name      string
		step, tok int // the generated length and candidate token that turn bad (-1: LogZ)
		value     float64
		mode      Mode
		want      bool
	}{
		{"NaN first step", 0, 1, math.NaN(), AfterSoftmax, true},
		{"+Inf second step", 1, 3, math.Inf(1), BeforeSoftmax, true},
		{"-Inf logit", 1, 2, math.Inf(-1), AfterSoftmax, true},
		{"NaN LogZ after softmax", 0, -1, math.NaN(), AfterSoftmax, true},
		{"NaN LogZ before softmax (unread)", 0, -1, math.NaN(), BeforeSoftmax, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := &SeqScorer{Score: func(seqs [][]int, cands [][]int) ([]Scores, error) {
				out := make([]Scores, len(seqs))
				for i, s := range seqs {
					out[i] = ScoresFromLogits(lm.logits(s), cands[i])
					if len(s)-1 != c.step {
						continue
					}
					if c.tok < 0 {
						out[i].LogZ = c.value
					}
					for j, tok := range cands[i] {
						if tok == c.tok {
							out[i].Logits[j] = float32(c.value)
						}
					}
				}
				return out, nil
			}}
			cfg := DefaultConfig()
			cfg.Beams, cfg.Return, cfg.Mode = 2, 2, c.mode
			_, err := Search(sc, tr, [][]int{{0}}, cfg)
			var nf *NonFiniteError
			if got := errors.As(err, &nf); got != c.want || (got && nf.Token != c.tok) {
				t.Fatalf("beam search: error %v, want a NonFiniteError for token %d: %v", err, c.tok, c.want)
			}
			// the exact search of the pruning analysis scores the same rows
			_, err = exactTopB(sc, NewIndex(tr), [][]int{{0}}, nil, exactConfig{K: 2, Mode: c.mode})
			if got := errors.As(err, &nf); got != c.want || (got && nf.Token != c.tok) {
				t.Fatalf("exact search: error %v, want a NonFiniteError for token %d: %v", err, c.tok, c.want)
			}
		})
	}
}

// An official-style trie stores titles without EOS: EOS is allowed only where nothing else is
// ([EOS] at leaves), the item sits on the leaf, and a title that is a token-prefix of another
// cannot be generated. decode follows whatever trie it gets; compare with the reference.
func TestSearchTrieWithoutEOS(t *testing.T) {
	const eos = 5
	// item 0 "1 2" is a prefix of item 1 "1 2 3"; item 2 "4"
	tr := newTestTrie([][]int{{1, 2}, {1, 2, 3}, {4}}, [][]int{{0}, {1}, {2}}, eos)
	lm := toyLM{V: 6, seed: 3, scale: 2}
	for _, mode := range []Mode{AfterSoftmax, BeforeSoftmax} {
		cfg := DefaultConfig()
		cfg.Beams, cfg.Return, cfg.Mode = 3, 3, mode
		got, err := Search(newFuncScorer(lm.logits), tr, [][]int{{0}}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ref := refSearch(tr, lm.logits, 6, []int{0}, 3, 3, mode, 1, StopScorer, 6)
		var real []refHyp
		for _, h := range ref.hyps {
			if h.score > -1e7 {
				real = append(real, h)
			}
		}
		if len(got[0].Hyps) != 2 || len(real) != 2 {
			t.Fatalf("%v: %v, reference %v: want the two leaf titles", mode, got[0].Hyps, real)
		}
		for k, h := range got[0].Hyps {
			if !slices.Equal(h.Tokens, real[k].seq) || math.Abs(h.Score-real[k].score) > tol {
				t.Fatalf("%v: %v, reference %v", mode, h, real[k])
			}
			if len(h.Items) != 1 || h.Items[0] == 0 {
				t.Fatalf("%v: items %v", mode, h.Items)
			}
		}
		ix := NewIndex(tr)
		if p, ok := ix.Path(1); !ok || !slices.Equal(p, []int{1, 2, 3, eos}) || ix.Depth() != 4 {
			t.Fatalf("index path %v %v depth %d", p, ok, ix.Depth())
		}
	}
}

// TestIndexSequences counts distinct item sequences: duplicate titles share one, a title that
// is a token-prefix of another is one of its own.
func TestIndexSequences(t *testing.T) {
	const eos = 9
	for _, c := range []struct {
		name  string
		seqs  [][]int
		items [][]int
		want  int
	}{
		{"distinct", [][]int{{1, 2, eos}, {1, 3, eos}, {4, eos}}, [][]int{{1}, {2}, {3}}, 3},
		{"duplicate titles", [][]int{{1, 2, eos}, {1, 2, eos}, {4, eos}}, [][]int{{1}, {2}, {3}}, 2},
		{"prefix title", [][]int{{1, eos}, {1, 2, eos}}, [][]int{{1}, {2}}, 2},
		{"empty", nil, nil, 0},
	} {
		if got := NewIndex(newTestTrie(c.seqs, c.items, eos)).Sequences(); got != c.want {
			t.Errorf("%s: %d sequences, want %d", c.name, got, c.want)
		}
	}
}
