package decode

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestExactTopBMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 200; trial++ {
		V := 3 + r.IntN(8)
		tr, seqs := randomCatalogue(r, 1+r.IntN(50), V, 1+r.IntN(6))
		ix := NewIndex(tr)
		lm := toyLM{V: V, seed: r.Uint64(), scale: []float64{0.5, 3, 8}[r.IntN(3)]}
		cfg := exactConfig{K: 1 + r.IntN(10), Mode: Mode(r.IntN(2)), LengthPenalty: []float64{1, 0, 0.5}[r.IntN(3)]}
		prompts := [][]int{{1}, {2, 3}, {4}}
		var floors []float64
		if r.IntN(2) == 0 { // seed with the beam search's K-th score, as AnalysePruning does
			bc := DefaultConfig()
			bc.Beams, bc.Return, bc.Mode, bc.LengthPenalty = cfg.K, cfg.K, cfg.Mode, cfg.LengthPenalty
			res, err := Search(newFuncScorer(lm.logits), tr, prompts, bc)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range res {
				f := math.Inf(-1)
				if len(x.Hyps) == cfg.K {
					f = x.Hyps[cfg.K-1].Score
				}
				floors = append(floors, f)
			}
		}
		sc := &checkingScorer{SeqScorer: newFuncScorer(lm.logits), t: tr}
		got, err := exactTopB(sc, ix, prompts, floors, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sc.err != nil {
			t.Fatal(sc.err)
		}
		checkExact(t, trial, got, tr, seqs, lm, prompts, cfg)
	}
}

// checkExact compares exactTopB's result against a brute-force ranking of every sequence.
func checkExact(t *testing.T, trial int, got []exact, tr *testTrie, seqs [][]int, lm toyLM, prompts [][]int, cfg exactConfig) {
	t.Helper()
	for u, p := range prompts {
		want := bruteForce(tr, seqs, lm.logits, p, cfg.Mode, cfg.LengthPenalty)
		if len(want) > cfg.K {
			want = want[:cfg.K]
		}
		if len(got[u].Hyps) != len(want) {
			t.Fatalf("trial %d: %d exact, want %d", trial, len(got[u].Hyps), len(want))
		}
		for k, h := range got[u].Hyps {
			// ties may be ordered differently: compare scores, and sequences where untied
			if math.Abs(h.Score-want[k].score) > tol {
				t.Fatalf("trial %d user %d rank %d: %v %.12f, brute force %v %.12f", trial, u, k, h.Tokens, h.Score, want[k].seq, want[k].score)
			}
			tied := (k > 0 && want[k-1].score == want[k].score) || (k+1 < len(want) && want[k+1].score == want[k].score)
			if !tied && !slices.Equal(h.Tokens, want[k].seq) {
				t.Fatalf("trial %d rank %d: %v, brute force %v", trial, k, h.Tokens, want[k].seq)
			}
		}
		if got[u].Truncated {
			t.Fatal("truncated without a cap")
		}
		if got[u].Expanded > tr.Len() {
			t.Fatalf("expanded %d rows for %d trie nodes", got[u].Expanded, tr.Len())
		}
	}
}

func (t *testTrie) Len() int { return len(t.kids) }

// The bound prunes: on a peaked model the exact search scores far fewer rows than the trie has.
func TestExactTopBPrunes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	V := 30
	tr, _ := randomCatalogue(r, 3000, V, 8)
	ix := NewIndex(tr)
	lm := toyLM{V: V, seed: 5, scale: 8}
	got, err := exactTopB(newFuncScorer(lm.logits), ix, [][]int{{1}}, nil, exactConfig{K: 10, Mode: BeforeSoftmax, LengthPenalty: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Expanded*4 > tr.Len() {
		t.Fatalf("expanded %d of %d nodes", got[0].Expanded, tr.Len())
	}
	capped, err := exactTopB(newFuncScorer(lm.logits), ix, [][]int{{1}}, nil, exactConfig{K: 10, Mode: BeforeSoftmax, LengthPenalty: 1, MaxFrontier: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !capped[0].Truncated {
		t.Fatal("a frontier cap of 3 did not truncate")
	}
	t.Logf("lp 0: %d of %d nodes scored", got[0].Expanded, tr.Len())
}

// The trace's loss step agrees with the reference's record of live prefixes, and the pruning
// verdict with the exact and beam lists.
func TestAnalysePruning(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var all []PruneCase
	for trial := 0; trial < 150; trial++ {
		V := 4 + r.IntN(7)
		tr, seqs := randomCatalogue(r, 5+r.IntN(40), V, 1+r.IntN(5))
		ix := NewIndex(tr)
		lm := toyLM{V: V, seed: r.Uint64(), scale: []float64{1, 3, 6}[r.IntN(3)]}
		cfg := DefaultConfig()
		cfg.Beams = 1 + r.IntN(4)
		cfg.Return = cfg.Beams
		cfg.Mode = Mode(r.IntN(2))
		cfg.Stop = StopRule(r.IntN(2))
		n := 4
		prompts := make([][]int, n)
		targets := make([]int, n)
		for i := range prompts {
			prompts[i] = []int{500 + i, trial}
			targets[i] = r.IntN(len(seqs) + 3) // item ids are 0..items-1; some fall outside
		}
		pc := PruneConfig{Beam: cfg, ExactLengthPenalty: []float64{cfg.LengthPenalty, 0}[trial%2]}
		cases, res, err := AnalysePruning(newFuncScorer(lm.logits), ix, prompts, targets, pc)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cases {
			path, inTrie := ix.Path(targets[i])
			if !inTrie {
				if c.Trace.How != NotInTrie || c.Pruned || c.LostHit || !math.IsNaN(c.TargetScore) {
					t.Fatalf("trial %d: target outside the trie: %+v", trial, c)
				}
				continue
			}
			if (c.BeamRank >= 0) != (c.Trace.How == Kept) {
				t.Fatalf("trial %d: beam rank %d but trace %+v", trial, c.BeamRank, c.Trace)
			}
			if c.BeamRank >= 0 && c.BeamRank != Rank(res[i].Hyps, targets[i]) {
				t.Fatal("beam rank")
			}
			ref := refSearch(tr, lm.logits, V, prompts[i], cfg.Beams, cfg.Return, cfg.Mode, cfg.LengthPenalty, cfg.Stop, ix.Depth()+3)
			// first step at which the reference's beam lost the target's prefix
			lost := 0
			for s := 1; s <= len(path) && s < len(ref.live); s++ {
				if s < len(path) && !ref.live[s][key(path[:s])] || s == len(path) && !ref.tried[s][key(path)] {
					lost = s
					break
				}
			}
			if c.Trace.How == PrunedBeam && c.Trace.Step != lost {
				t.Fatalf("trial %d: trace %+v, reference lost the prefix at step %d", trial, c.Trace, lost)
			}
			if lost > 0 && c.Trace.How != PrunedBeam && c.Trace.How != Stopped {
				t.Fatalf("trial %d: reference lost the prefix at step %d, trace %+v", trial, lost, c.Trace)
			}
			if c.Trace.How == Stopped && lost > 0 && lost <= c.Trace.Step {
				t.Fatalf("trial %d: stopped at %d but lost at %d", trial, c.Trace.Step, lost)
			}
			bf := bruteForce(tr, seqs, lm.logits, prompts[i], cfg.Mode, pc.ExactLengthPenalty)
			wantRank := -1
			for k := 0; k < len(bf) && k < cfg.Beams; k++ {
				if slices.Equal(bf[k].seq, path) {
					wantRank = k
				}
			}
			tiedAtCut := len(bf) > cfg.Beams && bf[cfg.Beams-1].score == bf[cfg.Beams].score
			if !tiedAtCut && (wantRank >= 0) != (c.ExactRank >= 0) {
				t.Fatalf("trial %d: exact rank %d, brute force %d", trial, c.ExactRank, wantRank)
			}
			if c.Pruned != (c.ExactRank >= 0 && c.BeamRank < 0) {
				t.Fatal("pruned verdict")
			}
			// The target's own score against an independent scoring of its path, and the
			// lost-hit verdict against the returned list.
			want := seqLogProb(tr, lm.logits, prompts[i], path, cfg.Mode) / math.Pow(float64(len(path)), cfg.LengthPenalty)
			if math.Abs(c.TargetScore-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Fatalf("trial %d: target score %v, want %v", trial, c.TargetScore, want)
			}
			hyps := res[i].Hyps
			lostHit := c.BeamRank < 0 && (len(hyps) < cfg.Return || want > hyps[len(hyps)-1].Score+1e-12)
			if c.LostHit != lostHit {
				t.Fatalf("trial %d: lost hit %v, want %v (score %v, returned %+v)", trial, c.LostHit, lostHit, want, hyps)
			}
		}
		all = append(all, cases...)
	}
	s := Summarise(all)
	if s.Pruned == 0 || s.InExact == 0 || s.LostHits == 0 || s.Prompts != len(all) {
		t.Fatalf("degenerate test data: %v", s)
	}
	if math.Abs(s.Rate-float64(s.Pruned)/float64(s.Prompts)) > 0 || math.Abs(s.RateOfExact-float64(s.Pruned)/float64(s.InExact)) > 0 ||
		s.LostHitRate != float64(s.LostHits)/float64(s.InBeam+s.LostHits) {
		t.Fatal("rates")
	}
	n := 0
	for _, v := range s.LostAt {
		n += v
	}
	if n != s.Pruned {
		t.Fatalf("LostAt sums to %d, %d pruned", n, s.Pruned)
	}
	t.Log(s)
	hc := howCounts(all)
	for _, h := range []Loss{Kept, NotInTrie, PrunedBeam, Rejected, Displaced, Stopped} {
		if hc[h] == 0 {
			t.Errorf("no case of %v in the test data: %v", h, hc)
		}
	}
	t.Log(s.ByHow, hc)
}

// A path longer than max_new_tokens cannot be returned: its target has no score.
func TestTargetLogProbsHonoursMaxNewTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tr, seqs := randomCatalogue(r, 20, 6, 4)
	ix := NewIndex(tr)
	lm := toyLM{V: 6, seed: 9, scale: 3}
	var prompts [][]int
	var targets []int
	for item := range seqs {
		prompts, targets = append(prompts, []int{100, item}), append(targets, item)
	}
	for _, maxNew := range []int{0, 2, 3} {
		for _, mode := range []Mode{AfterSoftmax, BeforeSoftmax} {
			sums, err := targetLogProbs(newFuncScorer(lm.logits), ix, prompts, targets, mode, maxNew)
			if err != nil {
				t.Fatal(err)
			}
			for i, item := range targets {
				path, _ := ix.Path(item)
				if maxNew > 0 && len(path) > maxNew {
					if !math.IsNaN(sums[i]) {
						t.Fatalf("max %d: path of %d tokens scored %v", maxNew, len(path), sums[i])
					}
					continue
				}
				if want := seqLogProb(tr, lm.logits, prompts[i], path, mode); math.Abs(sums[i]-want) > 1e-9 {
					t.Fatalf("max %d mode %v item %d: %v, want %v", maxNew, mode, item, sums[i], want)
				}
			}
		}
	}
}

func howCounts(cases []PruneCase) map[Loss]int {
	m := map[Loss]int{}
	for _, c := range cases {
		m[c.Trace.How]++
	}
	return m
}
