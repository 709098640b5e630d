package decode

import (
	"fmt"
	"math"
	"sort"
)

// ExactConfig configures ExactTopB.
type ExactConfig struct {
	K             int     // how many best sequences to find (the beam width B)
	Mode          Mode    // constraint mode, as in the beam search being analysed
	LengthPenalty float64 // score = sum log p / len^LengthPenalty (1: the beam search's ranking; 0: plain sequence log-probability)
	// MaxFrontier caps the open prefixes kept per prompt and level (0: no cap). Where the cap
	// bites, the prefixes with the lowest bounds are dropped and the result is marked Truncated
	// (no longer guaranteed exact).
	MaxFrontier int
}

// Exact is the exact top-K of one prompt.
type Exact struct {
	Hyps      []Hypothesis // best first (ties: earlier-found first)
	Expanded  int          // rows scored for this prompt
	Truncated bool         // MaxFrontier dropped prefixes that could still have qualified
}

type openPrefix struct {
	node  int
	sum   float64
	hist  int32
	bound float64
}

type exactUser struct {
	open  []openPrefix
	hist  []histEntry
	best  []finished // sorted best first, at most K
	floor float64    // a known lower bound of the K-th best score
	row0  int
	res   Exact
}

func (u *exactUser) threshold(k int) float64 {
	th := u.floor
	if len(u.best) == k && u.best[k-1].score > th {
		th = u.best[k-1].score
	}
	return th
}

// bound is the best final score any completion of a prefix with log-probability sum (<= 0) at
// depth d can reach: the sum can only fall and the length lies in [d+lo, d+hi].
func bound(sum float64, d, lo, hi int, lp float64) float64 {
	a := normalise(sum, d+lo, lp)
	b := normalise(sum, d+hi, lp)
	return math.Max(a, b)
}

// ExactTopB finds, for every prompt, the K sequences of the trie with the best full-sequence
// score, exactly, by level-synchronous branch and bound over the trie: all prompts' open
// prefixes of one depth are scored in one Scorer call (so a KV-cache scorer works unchanged),
// and a prefix is dropped once its bound (see bound) is below the K-th best finished score
// found so far (or below floors[i], a known lower bound such as the beam search's K-th score;
// nil for none). Prefixes are shared: each trie node is scored at most once per prompt.
func ExactTopB(sc Scorer, ix *Index, prompts [][]int, floors []float64, cfg ExactConfig) ([]Exact, error) {
	if cfg.K < 1 {
		return nil, fmt.Errorf("decode: exact top-%d", cfg.K)
	}
	if floors != nil && len(floors) != len(prompts) {
		return nil, fmt.Errorf("decode: %d prompts but %d floors", len(prompts), len(floors))
	}
	if len(prompts) == 0 {
		return nil, nil
	}
	t := ix.Trie
	eos := t.EOS()
	eosOnly := []int{eos}
	root := t.Root()
	users := make([]*exactUser, len(prompts))
	cands := make([][]int, len(prompts))
	for i := range users {
		u := &exactUser{floor: math.Inf(-1), row0: i}
		if floors != nil {
			u.floor = floors[i]
		}
		u.open = []openPrefix{{node: root, hist: -1}}
		u.res.Expanded = 1
		users[i] = u
		cands[i] = allowed(t, root, eosOnly)
	}
	scores, err := sc.Start(prompts, cands)
	if err != nil {
		return nil, fmt.Errorf("decode: exact start: %w", err)
	}
	var (
		lp      []float64
		next    []openPrefix
		parents []int
		toks    []int
	)
	for depth := 1; ; depth++ {
		parents, toks = parents[:0], toks[:0]
		var newC [][]int
		row := 0
		for _, u := range users {
			next = next[:0]
			for slot, o := range u.open {
				r := u.row0 + slot
				if len(scores[r].Logits) != len(cands[r]) {
					return nil, fmt.Errorf("decode: exact row %d: %d logits for %d candidates", r, len(scores[r].Logits), len(cands[r]))
				}
				lp = logProbs(lp, scores[r], cfg.Mode)
				for j, tok := range cands[r] {
					s := o.sum + lp[j]
					if math.IsNaN(s) || math.IsInf(s, -1) {
						continue
					}
					if tok == eos {
						f := finished{node: endNode(t, o.node), sum: s, n: depth, score: normalise(s, depth, cfg.LengthPenalty)}
						if len(u.best) == cfg.K && f.score <= u.best[cfg.K-1].score {
							continue
						}
						u.hist = append(u.hist, histEntry{tok: int32(tok), parent: o.hist})
						f.hist = int32(len(u.hist) - 1)
						pos := sort.Search(len(u.best), func(i int) bool { return u.best[i].score < f.score })
						u.best = append(u.best, finished{})
						copy(u.best[pos+1:], u.best[pos:])
						u.best[pos] = f
						if len(u.best) > cfg.K {
							u.best = u.best[:cfg.K]
						}
						continue
					}
					child, ok := t.Next(o.node, tok)
					if !ok {
						return nil, fmt.Errorf("decode: token %d not in the trie below node %d", tok, o.node)
					}
					lo, hi := ix.remaining(child)
					b := bound(s, depth, lo, hi, cfg.LengthPenalty)
					if b < u.threshold(cfg.K) {
						continue
					}
					u.hist = append(u.hist, histEntry{tok: int32(tok), parent: o.hist})
					next = append(next, openPrefix{node: child, sum: s, hist: int32(len(u.hist) - 1), bound: b})
					parents = append(parents, r)
					toks = append(toks, tok)
				}
			}
			// drop what the threshold found during this level rules out, then apply the cap
			th := u.threshold(cfg.K)
			first := len(parents) - len(next)
			kept := 0
			for i, o := range next {
				if o.bound >= th {
					next[kept] = o
					parents[first+kept] = parents[first+i]
					toks[first+kept] = toks[first+i]
					kept++
				}
			}
			next = next[:kept]
			parents, toks = parents[:first+kept], toks[:first+kept]
			if cfg.MaxFrontier > 0 && len(next) > cfg.MaxFrontier {
				ord := make([]int, len(next))
				for i := range ord {
					ord[i] = i
				}
				sort.SliceStable(ord, func(a, b int) bool { return next[ord[a]].bound > next[ord[b]].bound })
				ord = ord[:cfg.MaxFrontier]
				sort.Ints(ord)
				np := make([]openPrefix, len(ord))
				pp := make([]int, len(ord))
				tt := make([]int, len(ord))
				for i, k := range ord {
					np[i], pp[i], tt[i] = next[k], parents[first+k], toks[first+k]
				}
				next = append(next[:0], np...)
				parents = append(parents[:first], pp...)
				toks = append(toks[:first], tt...)
				u.res.Truncated = true
			}
			u.open = append(u.open[:0], next...)
			u.row0 = row
			row += len(u.open)
			u.res.Expanded += len(u.open)
			for _, o := range u.open {
				newC = append(newC, allowed(t, o.node, eosOnly))
			}
		}
		if len(parents) == 0 {
			break
		}
		cands = newC
		scores, err = sc.Step(parents, toks, cands)
		if err != nil {
			return nil, fmt.Errorf("decode: exact depth %d: %w", depth+1, err)
		}
		if len(scores) != len(parents) {
			return nil, fmt.Errorf("decode: exact depth %d returned %d rows for %d", depth+1, len(scores), len(parents))
		}
	}
	out := make([]Exact, len(users))
	for i, u := range users {
		tmp := userState{hist: u.hist}
		for _, f := range u.best {
			u.res.Hyps = append(u.res.Hyps, Hypothesis{Tokens: tmp.tokens(f.hist), Node: f.node, Items: t.ItemsAt(f.node), SumLogProb: f.sum, Score: f.score})
		}
		out[i] = u.res
	}
	return out, nil
}
