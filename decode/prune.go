package decode

import (
	"fmt"
	"math"
	"sort"
)

// PruneCase is the pruning analysis of one prompt.
type PruneCase struct {
	Target    int
	BeamRank  int  // position of the target in the beam-search list, -1 if absent
	ExactRank int  // position of the target in the exact top-B, -1 if absent
	Pruned    bool // "incorrect pruning": in the exact top-B but not returned by beam search
	Trace     Trace
	Truncated bool // the exact search hit MaxFrontier for this prompt
	// TargetScore is the beam search's own final score (sum log p / len^LengthPenalty) of the
	// target's whole sequence; NaN where the target cannot be returned (outside the trie, or
	// longer than MaxNewTokens).
	TargetScore float64
	// LostHit: beam search did not return the target although its score beats the worst
	// returned hypothesis (or fewer than Return came back), so keeping its prefix would have
	// made it a hit. Unlike Pruned it needs no exact search: the beam's own list is the bar.
	LostHit bool
}

// PruneSummary aggregates PruneCases.
type PruneSummary struct {
	Prompts int
	InExact int // targets in the exact top-B
	InBeam  int // targets returned by beam search
	Pruned  int // incorrectly pruned targets
	// Rate = Pruned / Prompts; RateOfExact = Pruned / InExact (0 when InExact is 0).
	Rate, RateOfExact float64
	// LostHits counts the LostHit cases; LostHitRate = LostHits / (InBeam + LostHits), the share
	// of the targets that would be returned with their prefixes kept which beam search pruned
	// (0 when there are none).
	LostHits    int
	LostHitRate float64
	// LostAt[s] counts the incorrectly pruned targets lost at decoding step s (Trace.Step);
	// ByHow counts them by Trace.How.
	LostAt    map[int]int
	ByHow     map[Loss]int
	Truncated int // prompts whose exact search was capped
}

// PruneConfig configures AnalysePruning.
type PruneConfig struct {
	Beam Config // the beam search analysed
	// ExactLengthPenalty is the length penalty of the exact ranking: 0 ranks items by the plain
	// sequence log-probability (defaultPruneConfig; the paper's incorrect pruning), whose bound
	// prunes; Beam.LengthPenalty by the beam search's own final score, whose bound barely
	// prunes (see bound): the search then scores most of the trie.
	ExactLengthPenalty float64
	MaxFrontier        int // exactConfig.MaxFrontier
	MaxRows            int // exactConfig.MaxRows
}

// defaultPruneConfig analyses DefaultConfig's beam search against the exact top-B by sequence
// log-probability, without a frontier cap or a row bound.
func defaultPruneConfig() PruneConfig {
	return PruneConfig{Beam: DefaultConfig(), ExactLengthPenalty: 0}
}

// AnalysePruning runs beam search with the targets traced, then the exact top-B search over the
// same scorer, seeded with a lower bound from the beam's hypotheses (their B-th best score under
// the exact ranking), and compares the two lists.
func AnalysePruning(sc Scorer, ix *Index, prompts [][]int, targets []int, cfg PruneConfig) ([]PruneCase, []Result, error) {
	res, err := searchTrace(sc, ix, prompts, targets, cfg.Beam)
	if err != nil {
		return nil, nil, err
	}
	B := cfg.Beam.Beams
	floors := make([]float64, len(prompts))
	for i, r := range res {
		floors[i] = math.Inf(-1)
		var sc []float64
		for _, h := range r.Hyps {
			if h.Tokens[len(h.Tokens)-1] == ix.Trie.EOS() { // complete sequences only
				sc = append(sc, normalise(h.SumLogProb, len(h.Tokens), cfg.ExactLengthPenalty))
			}
		}
		if len(sc) >= B {
			sort.Float64s(sc)
			floors[i] = sc[len(sc)-B]
		}
	}
	ex, err := exactTopB(sc, ix, prompts, floors, exactConfig{K: B, Mode: cfg.Beam.Mode, LengthPenalty: cfg.ExactLengthPenalty,
		MaxFrontier: cfg.MaxFrontier, MaxRows: cfg.MaxRows})
	if err != nil {
		return nil, nil, err
	}
	sums, err := targetLogProbs(sc, ix, prompts, targets, cfg.Beam.Mode, cfg.Beam.MaxNewTokens)
	if err != nil {
		return nil, nil, err
	}
	cases := make([]PruneCase, len(prompts))
	for i := range prompts {
		c := PruneCase{Target: targets[i], BeamRank: Rank(res[i].Hyps, targets[i]), ExactRank: Rank(ex[i].Hyps, targets[i]), Truncated: ex[i].Truncated}
		if res[i].Trace != nil {
			c.Trace = *res[i].Trace
		}
		c.Pruned = c.ExactRank >= 0 && c.BeamRank < 0
		c.TargetScore = math.NaN()
		if path, _ := ix.Path(targets[i]); !math.IsNaN(sums[i]) {
			c.TargetScore = normalise(sums[i], len(path), cfg.Beam.LengthPenalty)
			c.LostHit = c.BeamRank < 0 && outscores(c.TargetScore, res[i].Hyps, cfg.Beam.Return)
		}
		cases[i] = c
	}
	return cases, res, nil
}

// outscores reports whether a sequence of final score s would enter a returned list of
// `ret` hypotheses (best first): the list has room, or s beats its last.
func outscores(s float64, hyps []Hypothesis, ret int) bool {
	return len(hyps) < ret || s > hyps[len(hyps)-1].Score
}

// targetLogProbs returns, for each prompt, the sum of the log-probabilities (EOS included) of
// its target item's token path, scored the way the search scores it (mode), teacher-forced
// through sc: one Start and one Step per token, every prompt's row following its own path.
// NaN where the target is not in the trie or its path is longer than maxNew (> 0), so that no
// search could return it.
func targetLogProbs(sc Scorer, ix *Index, prompts [][]int, targets []int, mode Mode, maxNew int) ([]float64, error) {
	if len(targets) != len(prompts) {
		return nil, fmt.Errorf("decode: %d prompts but %d targets", len(prompts), len(targets))
	}
	sums := make([]float64, len(prompts))
	type follow struct {
		user int
		path []int
		node int
	}
	var rows []follow
	var starts [][]int
	var cands [][]int
	eosOnly := []int{ix.Trie.EOS()}
	for i := range prompts {
		sums[i] = math.NaN()
		if p, ok := ix.Path(targets[i]); ok && (maxNew <= 0 || len(p) <= maxNew) {
			sums[i] = 0
			rows = append(rows, follow{user: i, path: p, node: ix.Trie.Root()})
			starts = append(starts, prompts[i])
			cands = append(cands, allowed(ix.Trie, ix.Trie.Root(), eosOnly))
		}
	}
	if len(rows) == 0 {
		return sums, nil
	}
	scores, err := sc.Start(starts, cands)
	var lp []float64
	for depth := 0; err == nil && len(rows) > 0; depth++ {
		var next []follow
		var parents, toks []int
		var nextCands [][]int
		for r, f := range rows {
			tok := f.path[depth]
			j := sort.SearchInts(cands[r], tok)
			if j == len(cands[r]) || cands[r][j] != tok || len(scores[r].Logits) != len(cands[r]) {
				return nil, fmt.Errorf("decode: target %d of prompt %d: token %d not scored at step %d", targets[f.user], f.user, tok, depth+1)
			}
			if err := checkFinite(r, scores[r], cands[r], mode); err != nil {
				return nil, err
			}
			lp = logProbs(lp, scores[r], mode)
			sums[f.user] += lp[j]
			if depth+1 == len(f.path) {
				continue
			}
			child, ok := ix.Trie.Next(f.node, tok)
			if !ok {
				return nil, fmt.Errorf("decode: target %d: token %d not in the trie below node %d", targets[f.user], tok, f.node)
			}
			next = append(next, follow{user: f.user, path: f.path, node: child})
			parents, toks = append(parents, r), append(toks, tok)
			nextCands = append(nextCands, allowed(ix.Trie, child, eosOnly))
		}
		rows, cands = next, nextCands
		if len(rows) > 0 {
			scores, err = sc.Step(parents, toks, cands)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("decode: target scores: %w", err)
	}
	return sums, nil
}

// Summarise aggregates pruning cases.
func Summarise(cases []PruneCase) PruneSummary {
	s := PruneSummary{Prompts: len(cases), LostAt: map[int]int{}, ByHow: map[Loss]int{}}
	for _, c := range cases {
		if c.ExactRank >= 0 {
			s.InExact++
		}
		if c.BeamRank >= 0 {
			s.InBeam++
		}
		if c.Truncated {
			s.Truncated++
		}
		if c.LostHit {
			s.LostHits++
		}
		if c.Pruned {
			s.Pruned++
			s.LostAt[c.Trace.Step]++
			s.ByHow[c.Trace.How]++
		}
	}
	if s.Prompts > 0 {
		s.Rate = float64(s.Pruned) / float64(s.Prompts)
	}
	if s.InExact > 0 {
		s.RateOfExact = float64(s.Pruned) / float64(s.InExact)
	}
	if s.InBeam+s.LostHits > 0 {
		s.LostHitRate = float64(s.LostHits) / float64(s.InBeam+s.LostHits)
	}
	return s
}

// String formats a summary on a few lines (steps in increasing order).
func (s PruneSummary) String() string {
	out := fmt.Sprintf("prompts %d, target in exact top-B %d, returned by beam %d, incorrectly pruned %d (%.4f of prompts, %.4f of exact hits), lost hits %d (%.4f), exact search capped %d",
		s.Prompts, s.InExact, s.InBeam, s.Pruned, s.Rate, s.RateOfExact, s.LostHits, s.LostHitRate, s.Truncated)
	steps := make([]int, 0, len(s.LostAt))
	for k := range s.LostAt {
		steps = append(steps, k)
	}
	sort.Ints(steps)
	for _, k := range steps {
		out += fmt.Sprintf("\n  lost at step %d: %d", k, s.LostAt[k])
	}
	return out
}
