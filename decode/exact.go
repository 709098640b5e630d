package decode

import (
	"fmt"
	"math"
	"sort"
)

// exactConfig configures exactTopB.
type exactConfig struct {
	K             int     // how many best sequences to find (the beam width B)
	Mode          Mode    // constraint mode, as in the beam search being analysed
	LengthPenalty float64 // score = sum log p / len^LengthPenalty (1: the beam search's ranking; 0: plain sequence log-probability)
	// MaxFrontier caps the open prefixes kept per prompt and level (0: no cap). Where the cap
	// bites, the prefixes with the lowest bounds are dropped and the result is marked Truncated
	// (no longer guaranteed exact).
	MaxFrontier int
	// MaxRows bounds the rows of one Scorer call (0: no bound). A model-backed scorer holds a
	// KV cache and vocabulary-wide logits per row, so the rows of a call are what the search's
	// memory grows with. Prompts whose open prefixes would push a call over the bound leave the
	// search and are searched again afterwards, with fewer prompts beside them; a prompt whose
	// own open prefixes of one depth exceed it stops the search with a *RowBudgetError. The
	// bound never changes a result: each prompt's search is independent of the others.
	MaxRows int
}

// RowBudgetError says that one prompt alone needs more open prefixes of one depth than a
// Scorer call may hold (exactConfig.MaxRows). The search stops rather than drop prefixes that
// could still qualify: a result that depends on a memory budget would not be exact, and
// MaxFrontier is the explicit way to accept that.
type RowBudgetError struct {
	Prompt  int // index into the prompts
	Depth   int // prefix length (tokens generated)
	Rows    int // open prefixes of the prompt at that depth
	MaxRows int
}

func (e *RowBudgetError) Error() string {
	return fmt.Sprintf("exact search: prompt %d has %d open prefixes of depth %d, more than the %d rows one scorer call may hold "+
		"(exactConfig.MaxRows); MaxFrontier caps the open prefixes per prompt and depth, at the price of exactness",
		e.Prompt, e.Rows, e.Depth, e.MaxRows)
}

// exact is the exact top-K of one prompt.
type exact struct {
	Hyps      []Hypothesis // best first (ties: earlier-found first)
	Expanded  int          // rows scored for this prompt (in the pass that finished it; see exactConfig.MaxRows)
	Truncated bool         // MaxFrontier dropped prefixes that could still have qualified
}

type openPrefix struct {
	node  int
	sum   float64
	hist  int32
	bound float64
}

type exactUser struct {
	idx   int // index into the prompts
	open  []openPrefix
	hist  []histEntry
	best  []finished // sorted best first, at most K
	floor float64    // a known lower bound of the K-th best score
	row0  int
	res   exact
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

// How much the bound prunes depends on the ranking and the model. With LengthPenalty 0 the
// bound is the prefix's own sum, which falls below the K-th best once the prefix is unlikely,
// so few prefixes stay open (fewest with the constraint before the softmax). With 1 a prefix
// that can still grow long is bounded near 0 and stays open: the search scores most of the
// trie. With 0 and the constraint after the softmax every token also pays for the probability
// outside the trie, so the K-th best score is low and the trie's first levels stay open whole.
// Hence MaxRows. The Scorer contract rules out splitting one level into several calls (a Step
// forgets the rows its parents do not name), so the bound is kept by deferring whole prompts.
//
// exactTopB finds, for every prompt, the K sequences of the trie with the best full-sequence
// score, exactly, by level-synchronous branch and bound over the trie: all prompts' open
// prefixes of one depth are scored in one Scorer call (so a KV-cache scorer works unchanged),
// and a prefix is dropped once its bound (see bound) is below the K-th best finished score
// found so far (or below floors[i], a known lower bound such as the beam search's K-th score;
// nil for none). Prefixes are shared: each trie node is scored at most once per prompt. With
// cfg.MaxRows, prompts that do not fit a call are searched again in later passes (see
// exactConfig.MaxRows).
func exactTopB(sc Scorer, ix *Index, prompts [][]int, floors []float64, cfg exactConfig) ([]exact, error) {
	if cfg.K < 1 {
		return nil, fmt.Errorf("decode: exact top-%d", cfg.K)
	}
	if floors != nil && len(floors) != len(prompts) {
		return nil, fmt.Errorf("decode: %d prompts but %d floors", len(prompts), len(floors))
	}
	if cfg.MaxRows < 0 || cfg.MaxFrontier < 0 {
		return nil, fmt.Errorf("decode: exact search with MaxRows %d, MaxFrontier %d", cfg.MaxRows, cfg.MaxFrontier)
	}
	out := make([]exact, len(prompts))
	pending := make([]int, len(prompts))
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		group := pending
		if cfg.MaxRows > 0 && len(group) > cfg.MaxRows {
			group = group[:cfg.MaxRows]
		}
		// The first prompt of a pass is never deferred, so every pass finishes at least one.
		deferred, err := exactPass(sc, ix, prompts, floors, group, cfg, out)
		if err != nil {
			return nil, err
		}
		pending = append(deferred, pending[len(group):]...)
	}
	return out, nil
}

// exactPass searches the prompts of group together and writes their results into out, except
// those deferred to keep the calls within cfg.MaxRows, which it returns.
func exactPass(sc Scorer, ix *Index, prompts [][]int, floors []float64, group []int, cfg exactConfig, out []exact) ([]int, error) {
	s := newExactSearch(ix, group, floors, cfg)
	ps := make([][]int, len(group))
	for k, i := range group {
		ps[k] = prompts[i]
	}
	scores, err := sc.Start(ps, s.cands)
	if err != nil {
		return nil, fmt.Errorf("decode: exact start: %w", err)
	}
	if len(scores) != len(ps) {
		return nil, fmt.Errorf("decode: exact start returned %d rows for %d", len(scores), len(ps))
	}
	for depth := 1; ; depth++ {
		if err := s.level(depth, scores); err != nil {
			return nil, err
		}
		if len(s.parents) == 0 {
			break
		}
		scores, err = sc.Step(s.parents, s.toks, s.cands)
		if err != nil {
			return nil, fmt.Errorf("decode: exact depth %d: %w", depth+1, err)
		}
		if len(scores) != len(s.parents) {
			return nil, fmt.Errorf("decode: exact depth %d returned %d rows for %d", depth+1, len(scores), len(s.parents))
		}
	}
	for _, u := range s.users {
		out[u.idx] = s.result(u)
	}
	return s.deferred, nil
}

// exactSearch is the state of one exactTopB run: the users (prompts) and the rows of the
// scorer call in progress.
type exactSearch struct {
	ix      *Index
	t       Trie
	cfg     exactConfig
	eos     int
	eosOnly []int
	users   []*exactUser
	cands   [][]int // candidate tokens of each row of the current scorer call
	lp      []float64
	next    []openPrefix // the current user's prefixes one token deeper
	parents []int        // rows of the next Step: parent row and token
	toks    []int
	// deferred are the prompts (indices into the prompts) that left this pass to keep a call
	// within MaxRows.
	deferred []int
}

// newExactSearch opens the root prefix of every prompt of group (indices into floors).
func newExactSearch(ix *Index, group []int, floors []float64, cfg exactConfig) *exactSearch {
	t := ix.Trie
	eos := t.EOS()
	s := &exactSearch{ix: ix, t: t, cfg: cfg, eos: eos, eosOnly: []int{eos},
		users: make([]*exactUser, len(group)), cands: make([][]int, len(group))}
	root := t.Root()
	for k, i := range group {
		u := &exactUser{idx: i, floor: math.Inf(-1), row0: k}
		if floors != nil {
			u.floor = floors[i]
		}
		u.open = []openPrefix{{node: root, hist: -1}}
		u.res.Expanded = 1
		s.users[k] = u
		s.cands[k] = allowed(t, root, s.eosOnly)
	}
	return s
}

// level extends every user's open prefixes by one token (depth = their new length), keeps
// the ones whose bound still qualifies as the users' new open prefixes, and sets the rows
// (parents, toks, cands) of the next Step. A user whose new prefixes would take the call over
// MaxRows leaves the pass (deferred); one whose prefixes alone exceed it is an error.
func (s *exactSearch) level(depth int, scores []Scores) error {
	s.parents, s.toks = s.parents[:0], s.toks[:0]
	var newC [][]int
	row := 0
	kept := s.users[:0] // users are only ever removed, so compacting in place is safe
	for _, u := range s.users {
		s.next = s.next[:0]
		if err := s.expand(u, depth, scores); err != nil {
			return err
		}
		first := len(s.parents) - len(s.next)
		s.dropBelowThreshold(u, first)
		s.capFrontier(u, first)
		if lim := s.cfg.MaxRows; lim > 0 && row+len(s.next) > lim {
			if len(s.next) > lim {
				return &RowBudgetError{Prompt: u.idx, Depth: depth, Rows: len(s.next), MaxRows: lim}
			}
			s.parents, s.toks = s.parents[:first], s.toks[:first]
			s.deferred = append(s.deferred, u.idx)
			continue
		}
		u.open = append(u.open[:0], s.next...)
		u.row0 = row
		row += len(u.open)
		u.res.Expanded += len(u.open)
		for _, o := range u.open {
			newC = append(newC, allowed(s.t, o.node, s.eosOnly))
		}
		kept = append(kept, u)
	}
	s.users = kept
	s.cands = newC
	return nil
}

// expand scores the continuations of u's open prefixes: EOS finishes a sequence (kept if it
// ranks among the K best), any other token opens a prefix of depth `depth` if its bound
// reaches the current threshold.
func (s *exactSearch) expand(u *exactUser, depth int, scores []Scores) error {
	for slot, o := range u.open {
		r := u.row0 + slot
		if len(scores[r].Logits) != len(s.cands[r]) {
			return fmt.Errorf("decode: exact row %d: %d logits for %d candidates", r, len(scores[r].Logits), len(s.cands[r]))
		}
		if err := checkFinite(r, scores[r], s.cands[r], s.cfg.Mode); err != nil {
			return err
		}
		s.lp = logProbs(s.lp, scores[r], s.cfg.Mode)
		for j, tok := range s.cands[r] {
			sum := o.sum + s.lp[j]
			if math.IsInf(sum, -1) { // a probability that underflowed: never in the top K
				continue
			}
			if tok == s.eos {
				f := finished{node: endNode(s.t, o.node), sum: sum, n: depth, score: normalise(sum, depth, s.cfg.LengthPenalty)}
				u.offerFinished(f, o.hist, tok, s.cfg.K)
				continue
			}
			child, ok := s.t.Next(o.node, tok)
			if !ok {
				return fmt.Errorf("decode: token %d not in the trie below node %d", tok, o.node)
			}
			lo, hi := s.ix.remaining(child)
			b := bound(sum, depth, lo, hi, s.cfg.LengthPenalty)
			if b < u.threshold(s.cfg.K) {
				continue
			}
			u.hist = append(u.hist, histEntry{tok: int32(tok), parent: o.hist})
			s.next = append(s.next, openPrefix{node: child, sum: sum, hist: int32(len(u.hist) - 1), bound: b})
			s.parents = append(s.parents, r)
			s.toks = append(s.toks, tok)
		}
	}
	return nil
}

// offerFinished inserts the finished sequence f (its last token tok after the history entry
// parent) into u.best, sorted best first and cut to k, if it ranks there.
func (u *exactUser) offerFinished(f finished, parent int32, tok, k int) {
	if len(u.best) == k && f.score <= u.best[k-1].score {
		return
	}
	u.hist = append(u.hist, histEntry{tok: int32(tok), parent: parent})
	f.hist = int32(len(u.hist) - 1)
	pos := sort.Search(len(u.best), func(i int) bool { return u.best[i].score < f.score })
	u.best = append(u.best, finished{})
	copy(u.best[pos+1:], u.best[pos:])
	u.best[pos] = f
	if len(u.best) > k {
		u.best = u.best[:k]
	}
}

// dropBelowThreshold removes the new prefixes (and their rows from first on) that the
// sequences finished during this level rule out.
func (s *exactSearch) dropBelowThreshold(u *exactUser, first int) {
	th := u.threshold(s.cfg.K)
	kept := 0
	for i, o := range s.next {
		if o.bound >= th {
			s.next[kept] = o
			s.parents[first+kept] = s.parents[first+i]
			s.toks[first+kept] = s.toks[first+i]
			kept++
		}
	}
	s.next = s.next[:kept]
	s.parents, s.toks = s.parents[:first+kept], s.toks[:first+kept]
}

// capFrontier keeps the MaxFrontier new prefixes with the highest bounds (in their original
// order) and marks the result Truncated when it drops any.
func (s *exactSearch) capFrontier(u *exactUser, first int) {
	if s.cfg.MaxFrontier <= 0 || len(s.next) <= s.cfg.MaxFrontier {
		return
	}
	next := s.next
	ord := make([]int, len(next))
	for i := range ord {
		ord[i] = i
	}
	sort.SliceStable(ord, func(a, b int) bool { return next[ord[a]].bound > next[ord[b]].bound })
	ord = ord[:s.cfg.MaxFrontier]
	sort.Ints(ord)
	np := make([]openPrefix, len(ord))
	pp := make([]int, len(ord))
	tt := make([]int, len(ord))
	for i, k := range ord {
		np[i], pp[i], tt[i] = next[k], s.parents[first+k], s.toks[first+k]
	}
	s.next = append(next[:0], np...)
	s.parents = append(s.parents[:first], pp...)
	s.toks = append(s.toks[:first], tt...)
	u.res.Truncated = true
}

// result turns u's best finished sequences into hypotheses.
func (s *exactSearch) result(u *exactUser) exact {
	tmp := userState{hist: u.hist}
	for _, f := range u.best {
		u.res.Hyps = append(u.res.Hyps, Hypothesis{Tokens: tmp.tokens(f.hist), Node: f.node, Items: s.t.ItemsAt(f.node), SumLogProb: f.sum, Score: f.score})
	}
	return u.res
}
