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
}

// PruneSummary aggregates PruneCases.
type PruneSummary struct {
	Prompts int
	InExact int // targets in the exact top-B
	InBeam  int // targets returned by beam search
	Pruned  int // incorrectly pruned targets
	// Rate = Pruned / Prompts; RateOfExact = Pruned / InExact (0 when InExact is 0).
	Rate, RateOfExact float64
	// LostAt[s] counts the incorrectly pruned targets lost at decoding step s (Trace.Step);
	// ByHow counts them by Trace.How.
	LostAt    map[int]int
	ByHow     map[Loss]int
	Truncated int // prompts whose exact search was capped
}

// PruneConfig configures AnalysePruning.
type PruneConfig struct {
	Beam Config // the beam search analysed
	// ExactLengthPenalty is the length penalty of the exact ranking: Beam.LengthPenalty ranks
	// items by the beam search's own final score (DefaultPruneConfig), 0 by the plain sequence
	// log-probability.
	ExactLengthPenalty float64
	MaxFrontier        int // ExactConfig.MaxFrontier
}

// DefaultPruneConfig analyses DefaultConfig's beam search against the exact top-B by the same
// (length-normalised) score, without a frontier cap.
func DefaultPruneConfig() PruneConfig {
	c := DefaultConfig()
	return PruneConfig{Beam: c, ExactLengthPenalty: c.LengthPenalty}
}

// AnalysePruning runs beam search with the targets traced, then the exact top-B search over the
// same scorer, seeded with a lower bound from the beam's hypotheses (their B-th best score under
// the exact ranking), and compares the two lists.
func AnalysePruning(sc Scorer, ix *Index, prompts [][]int, targets []int, cfg PruneConfig) ([]PruneCase, []Result, error) {
	res, err := SearchTrace(sc, ix, prompts, targets, cfg.Beam)
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
	ex, err := ExactTopB(sc, ix, prompts, floors, ExactConfig{K: B, Mode: cfg.Beam.Mode, LengthPenalty: cfg.ExactLengthPenalty, MaxFrontier: cfg.MaxFrontier})
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
		cases[i] = c
	}
	return cases, res, nil
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
	return s
}

// String formats a summary on a few lines (steps in increasing order).
func (s PruneSummary) String() string {
	out := fmt.Sprintf("prompts %d, target in exact top-B %d, returned by beam %d, incorrectly pruned %d (%.4f of prompts, %.4f of exact hits), exact search capped %d",
		s.Prompts, s.InExact, s.InBeam, s.Pruned, s.Rate, s.RateOfExact, s.Truncated)
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
