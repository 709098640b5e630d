package decode

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// passScorer counts the searches begun (Start calls) on top of checkingScorer's checks and
// row counts: with a row bound, every Start after the first is a pass over deferred prompts.
type passScorer struct {
	*checkingScorer
	starts int
}

func (p *passScorer) Start(prompts [][]int, cands [][]int) ([]Scores, error) {
	p.starts++
	return p.checkingScorer.Start(prompts, cands)
}

func newPassScorer(tr *testTrie, lm toyLM) *passScorer {
	return &passScorer{checkingScorer: &checkingScorer{SeqScorer: newFuncScorer(lm.logits), t: tr}}
}

// TestExactTopBRowBudget: with MaxRows, no scorer call holds more rows than the bound; the
// results are those of the unbounded search (so still exact where no frontier cap applies)
// whenever every prompt alone fits the bound, and the search stops with a *RowBudgetError
// naming a prompt and depth that do not fit otherwise.
func TestExactTopBRowBudget(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	passes, budgetErrs, exact := 0, 0, 0
	for trial := 0; trial < 150; trial++ {
		V := 3 + r.IntN(8)
		tr, seqs := randomCatalogue(r, 1+r.IntN(60), V, 1+r.IntN(6))
		ix := NewIndex(tr)
		lm := toyLM{V: V, seed: r.Uint64(), scale: []float64{0.5, 3, 8}[r.IntN(3)]}
		cfg := exactConfig{K: 1 + r.IntN(6), Mode: Mode(r.IntN(2)), LengthPenalty: []float64{1, 0, 0.5}[r.IntN(3)]}
		if r.IntN(3) == 0 {
			cfg.MaxFrontier = 1 + r.IntN(6)
		}
		prompts := make([][]int, 1+r.IntN(6))
		for i := range prompts {
			prompts[i] = []int{100 + i, trial}
		}
		ref, err := exactTopB(newFuncScorer(lm.logits), ix, prompts, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// alone[i]: the most rows prompt i's own search puts in one call (its widest level).
		alone, widest := make([]int, len(prompts)), 0
		for i, p := range prompts {
			sc := newPassScorer(tr, lm)
			if _, err := exactTopB(sc, ix, [][]int{p}, nil, cfg); err != nil {
				t.Fatal(err)
			}
			alone[i], widest = sc.maxRows, max(widest, sc.maxRows)
		}
		for _, maxRows := range []int{1, 2, 1 + r.IntN(widest*len(prompts)), widest, widest * len(prompts)} {
			cfg.MaxRows = maxRows
			sc := newPassScorer(tr, lm)
			got, err := exactTopB(sc, ix, prompts, nil, cfg)
			if sc.err != nil {
				t.Fatal(sc.err)
			}
			if sc.maxRows > maxRows {
				t.Fatalf("trial %d: a call of %d rows under a bound of %d", trial, sc.maxRows, maxRows)
			}
			var be *RowBudgetError
			if widest > maxRows {
				if !errors.As(err, &be) || be.MaxRows != maxRows || be.Rows <= maxRows || be.Rows > alone[be.Prompt] || be.Depth < 1 {
					t.Fatalf("trial %d: prompts alone need up to %d rows (%v), bound %d: error %v", trial, widest, alone, maxRows, err)
				}
				budgetErrs++
				continue
			}
			if err != nil {
				t.Fatalf("trial %d: bound %d >= widest level %d: %v", trial, maxRows, widest, err)
			}
			if !reflect.DeepEqual(got, ref) {
				t.Fatalf("trial %d: bound %d changed the results:\n%+v\nunbounded:\n%+v", trial, maxRows, got, ref)
			}
			if cfg.MaxFrontier == 0 {
				checkExact(t, trial, got, tr, seqs, lm, prompts, cfg)
				exact++
			}
			if sc.starts > 1 {
				passes++
			}
		}
	}
	if passes == 0 || budgetErrs == 0 || exact == 0 {
		t.Fatalf("degenerate test data: %d runs with deferred prompts, %d budget errors, %d checked exact", passes, budgetErrs, exact)
	}
	t.Logf("%d runs deferred prompts to later passes, %d stopped at the bound, %d checked against brute force", passes, budgetErrs, exact)
}

// TestExactRowBudgetCases: a flat catalogue of 20 titles under distinct first tokens and a flat
// model, so every prompt has 20 open prefixes at depth 1 whatever the length penalty.
func TestExactRowBudgetCases(t *testing.T) {
	var seqs, items [][]int
	for i := 0; i < 20; i++ {
		seqs, items = append(seqs, []int{i, 20 + i%3, 23}), append(items, []int{i})
	}
	tr := newTestTrie(seqs, items, 23)
	ix := NewIndex(tr)
	lm := toyLM{V: 24, seed: 3, scale: 0.01}
	prompts := [][]int{{1}, {2}, {3}}
	for _, c := range []struct {
		name                 string
		maxRows, maxFrontier int
		wantErr, truncated   bool
		starts, peak         int // Start calls; most rows of one call
	}{
		{"unbounded", 0, 0, false, false, 1, 60},
		{"all fit", 60, 0, false, false, 1, 60},
		{"one prompt per pass", 20, 0, false, false, 3, 20},
		{"two, then one", 45, 0, false, false, 2, 40},
		{"a prompt alone exceeds", 19, 0, true, false, 1, 3},
		{"capped to fit", 5, 5, false, true, 3, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := newPassScorer(tr, lm)
			cfg := exactConfig{K: 3, Mode: AfterSoftmax, LengthPenalty: 1, MaxRows: c.maxRows, MaxFrontier: c.maxFrontier}
			got, err := exactTopB(sc, ix, prompts, nil, cfg)
			if sc.starts != c.starts || sc.maxRows != c.peak {
				t.Errorf("%d passes, %d rows at most; want %d, %d", sc.starts, sc.maxRows, c.starts, c.peak)
			}
			var be *RowBudgetError
			if c.wantErr {
				want := RowBudgetError{Prompt: 0, Depth: 1, Rows: 20, MaxRows: c.maxRows}
				if !errors.As(err, &be) || *be != want || !strings.Contains(err.Error(), "MaxRows") {
					t.Fatalf("error %v, want %+v naming MaxRows", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range got {
				if e.Truncated != c.truncated || len(e.Hyps) != 3 {
					t.Errorf("prompt %d: truncated %v, %d hypotheses", i, e.Truncated, len(e.Hyps))
				}
			}
		})
	}
}

// AnalysePruning hands PruneConfig.MaxRows to the exact search: the same cases within the
// bound, a *RowBudgetError where a prompt alone exceeds it.
func TestAnalysePruningRowBudget(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	tr, seqs := randomCatalogue(r, 60, 8, 5)
	ix := NewIndex(tr)
	lm := toyLM{V: 8, seed: 4, scale: 3}
	prompts := [][]int{{1}, {2}, {3}, {4}}
	targets := []int{0, 5, 17, len(seqs) - 1}
	pc := defaultPruneConfig()
	pc.Beam.Beams, pc.Beam.Return = 3, 3
	ref, _, err := AnalysePruning(newFuncScorer(lm.logits), ix, prompts, targets, pc)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxRows = ix.Trie.(*testTrie).Len() // no level is wider than the trie
	got, _, err := AnalysePruning(newFuncScorer(lm.logits), ix, prompts, targets, pc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutNaN(got), withoutNaN(ref)) {
		t.Fatalf("bounded %+v\nunbounded %+v", got, ref)
	}
	pc.MaxRows = 1
	var be *RowBudgetError
	if _, _, err := AnalysePruning(newFuncScorer(lm.logits), ix, prompts, targets, pc); !errors.As(err, &be) {
		t.Fatalf("a bound of one row: %v", err)
	}
}

// withoutNaN zeroes NaN target scores, which reflect.DeepEqual never finds equal.
func withoutNaN(cases []PruneCase) []PruneCase {
	out := append([]PruneCase(nil), cases...)
	for i := range out {
		if out[i].TargetScore != out[i].TargetScore {
			out[i].TargetScore = 0
		}
	}
	return out
}
