package decode

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Mode says where the trie constraint is applied relative to the softmax.
type Mode int

const (
	// AfterSoftmax: log p over the whole vocabulary, disallowed tokens dropped afterwards
	// (HF's prefix_allowed_tokens_fn; the official --constrained_before_softmax False):
	// log p(tok) = logit - LogZ.
	AfterSoftmax Mode = iota
	// BeforeSoftmax: disallowed logits masked first, so the softmax renormalises over the
	// allowed tokens (the official custom CBS, --constrained_before_softmax True):
	// log p(tok) = logit - logsumexp(candidate logits).
	BeforeSoftmax
)

func (m Mode) String() string {
	switch m {
	case AfterSoftmax:
		return "after-softmax"
	case BeforeSoftmax:
		return "before-softmax"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// StopRule selects the early_stopping=False heuristic of one transformers generation.
type StopRule int

const (
	// StopScorer is BeamSearchScorer/BeamHypotheses.is_done (transformers 4.x up to the
	// vectorised rewrite): done when B hypotheses are finished and the worst of them is >= the
	// best of this step's top-2B candidate scores (EOS candidates included) / generated_len^lp.
	StopScorer StopRule = iota
	// StopVectorized is _check_early_stop_heuristic of the vectorised _beam_search (newer
	// transformers): the same test with the best running (non-EOS) beam's score instead.
	StopVectorized
)

// Config holds the beam-search settings. Use DefaultConfig and change what differs.
type Config struct {
	Beams         int      // num_beams, B (default 10)
	Return        int      // num_return_sequences (default B; at most B)
	Mode          Mode     // where the trie constraint applies
	LengthPenalty float64  // final score = sum log p / generated_len^LengthPenalty (default 1)
	Stop          StopRule // early_stopping=False heuristic (default StopScorer)
	// MaxNewTokens ends the search after this many generated tokens (HF max_new_tokens);
	// still-open beams are then finalised as HF's finalize does. 0: no limit (the trie bounds
	// every path). The official run used 128, which titles of 128 tokens or more (two in
	// Office) do not fit: their beams end unfinished, on an inner node with no items.
	MaxNewTokens int
}

// DefaultConfig is the official evaluation: 10 beams, 10 returned sequences, length penalty 1,
// early_stopping False, constraint after the softmax.
func DefaultConfig() Config {
	return Config{Beams: 10, Return: 10, Mode: AfterSoftmax, LengthPenalty: 1, Stop: StopScorer}
}

// Hypothesis is one finished sequence.
type Hypothesis struct {
	Tokens     []int   // generated tokens, final EOS included
	Node       int     // trie node after the EOS
	Items      []int   // item ids ending at Node (several for duplicate titles; owned by the trie)
	SumLogProb float64 // sum of the tokens' log-probabilities (EOS included)
	Score      float64 // SumLogProb / len(Tokens)^LengthPenalty: HF's sequences_scores
}

// Result is the search outcome for one prompt.
type Result struct {
	Hyps  []Hypothesis // best first; len <= Return (shorter only when the trie has fewer items)
	Steps int          // decoding steps run for this prompt
	Trace *Trace       // the target's fate, when targets were given
}

// Loss says how a target was lost by beam search.
type Loss int

const (
	Kept        Loss = iota // returned
	NotInTrie               // the target item has no sequence in the trie
	PrunedBeam              // its prefix was not among the B continued beams (or its EOS ranked >= B)
	Rejected                // it finished but scored <= the worst of B finished hypotheses
	Displaced               // it finished and was later pushed out by B better finished ones
	Stopped                 // the early-stopping heuristic ended the search with its prefix still open
	NotReturned             // it was among the B finished but below Return
)

func (l Loss) String() string {
	return [...]string{"kept", "not-in-trie", "pruned-beam", "rejected", "displaced", "stopped", "not-returned"}[l]
}

// Trace follows the target item's token path through one search.
type Trace struct {
	Target int
	How    Loss
	// Step is the 1-based decoding step (= generated tokens) at which the target was lost:
	// for PrunedBeam the length of the first prefix that was not kept, for Rejected its full
	// length, for Displaced and Stopped the step at which that happened. 0 when Kept.
	Step int
}

// Search runs batched constrained beam search for all prompts at once (one Start, then one
// Step per decoding step with the live beams of all unfinished prompts, at most B rows each,
// so never more than len(prompts)*B rows in one call). The caller picks the batch size (8 to
// 64 prompts is sensible); results do not depend on it.
func Search(sc Scorer, t Trie, prompts [][]int, cfg Config) ([]Result, error) {
	return search(sc, t, nil, prompts, nil, cfg)
}

// searchTrace is Search that also records, for each prompt, how its target item fared
// (Result.Trace); targets[i] is an item id of prompt i.
func searchTrace(sc Scorer, ix *Index, prompts [][]int, targets []int, cfg Config) ([]Result, error) {
	if len(targets) != len(prompts) {
		return nil, fmt.Errorf("decode: %d prompts but %d targets", len(prompts), len(targets))
	}
	return search(sc, ix.Trie, ix, prompts, targets, cfg)
}

type histEntry struct {
	tok    int32
	parent int32
}

type beamRow struct {
	node int
	sum  float64
	hist int32 // index of the last token in the user's history (-1: none)
}

type finished struct {
	hist  int32 // index of the EOS (or last) token in the user's history
	node  int
	sum   float64
	score float64
	n     int // generated length
}

type cand struct {
	score float64
	slot  int32 // beam slot within the user
	j     int32 // candidate index within the slot's cands
	tok   int32
}

// better orders candidates as a stable top-k over HF's flattened (beam, token) scores would.
func better(a, b *cand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.slot != b.slot {
		return a.slot < b.slot
	}
	return a.tok < b.tok
}

type userState struct {
	beams   []beamRow
	next    []beamRow
	hist    []histEntry
	hyps    []finished // insertion order, like BeamHypotheses.beams
	worst   float64
	done    bool
	steps   int
	row0    int // first row of this user's beams in the previous call
	top     []cand
	target  []int // target node path: target[k] = node after k tokens (nil: no trace)
	trace   *Trace
	tgtHyp  bool // the target is among hyps
	tgtLive bool // the target's prefix is among the live beams
}

func (u *userState) tokens(h int32) []int {
	n := 0
	for i := h; i >= 0; i = u.hist[i].parent {
		n++
	}
	out := make([]int, n)
	for i := h; i >= 0; i = u.hist[i].parent {
		n--
		out[n] = int(u.hist[i].tok)
	}
	return out
}

// add mirrors BeamHypotheses.add; it reports whether the hypothesis was kept and which node
// (if any) it pushed out.
func (u *userState) add(f finished, capacity int) (kept bool, removed int) {
	removed = -1
	if len(u.hyps) < capacity || f.score > u.worst {
		u.hyps = append(u.hyps, f)
		if len(u.hyps) > capacity {
			// drop the lowest score (the earliest one among equal lowest), worst = next lowest
			lo := 0
			for i := 1; i < len(u.hyps); i++ {
				if u.hyps[i].score < u.hyps[lo].score {
					lo = i
				}
			}
			removed = u.hyps[lo].node
			u.hyps = append(u.hyps[:lo], u.hyps[lo+1:]...)
			u.worst = math.Inf(1)
			for _, h := range u.hyps {
				u.worst = math.Min(u.worst, h.score)
			}
		} else {
			u.worst = math.Min(u.worst, f.score)
		}
		return true, removed
	}
	return false, removed
}

func normalise(sum float64, n int, lp float64) float64 {
	if lp == 1 {
		return sum / float64(n)
	}
	return sum / math.Pow(float64(n), lp)
}

// The HF semantics, as read in transformers' generation/beam_search.py (BeamSearchScorer,
// BeamHypotheses) and the vectorised _beam_search of generation/utils.py:
//
//   - num_beams = B, num_return_sequences = Return, length_penalty = LengthPenalty,
//     early_stopping False, no sampling, no other logits processors (temperature, repetition
//     penalty, ... are never applied: the official GenerationConfig sets none).
//   - First step from one beam: HF starts rows 1..B-1 at -1e9, so all first candidates come
//     from beam 0; decode starts with a single row per prompt.
//   - Every step ranks all (beam, token) pairs by accumulated log-probability (sum over the
//     generated tokens) and takes the top 2B. Walking them in rank order, an EOS pair within
//     the first B ranks is offered to the finished hypotheses, an EOS pair at rank >= B is
//     skipped, and the first B non-EOS pairs become the next beams.
//   - Finished hypotheses (BeamHypotheses): at most B kept; a new one enters if fewer than B
//     are kept or its score is strictly above the worst kept; when over B, the lowest (the
//     earliest among equal lowest) is dropped.
//   - Score = sum of log-probabilities / generated_len^length_penalty, where generated_len is
//     the number of generated tokens INCLUDING the EOS (HF: cur_len = input_ids.shape[-1] + 1,
//     minus decoder_prompt_len, in BeamSearchScorer.process; cur_len + 1 - decoder_prompt_len
//     in the vectorised version). The prompt does not count. (transformers versions before
//     decoder_prompt_len existed divided by the whole row length, left-padded prompt included
//     and EOS excluded, which made scores depend on the batch's padding.)
//   - early_stopping False: after each step a prompt is done once B hypotheses are finished
//     and the worst of them is >= best / generated_len^length_penalty, generated_len = the
//     current step; "best" is per StopRule. A done prompt's open beams are discarded.
//   - max_new_tokens: at that step a prompt's open beams are finalised like
//     BeamSearchScorer.finalize (all added, score = sum / tokens so far). With a trie no path
//     outlives the longest title (Index.Depth), so the limit only bites on longer titles:
//     such beams end without EOS, on an inner node with no Items, and take a slot of the
//     returned list as HF's do.
//   - The returned list is the finished hypotheses sorted by score, best first, ties as HF's
//     stable sort-then-pop gives them (the later-added first), cut to Return.
//   - The constraint: the allowed tokens of a beam are the children of its trie node; where a
//     node has none, [EOS] (see allowed). A node can offer EOS and other tokens at once, so
//     titles that are token-prefixes of other titles are reachable where the trie allows it.
//
// Deviations from HF kept on purpose:
//
//  1. No junk rows. HF always computes B rows per prompt: at step 1 all B copies of the
//     prompt, and wherever fewer than B allowed continuations exist it keeps running filler
//     beams (copies scored near -1e9 from the initial rows, or disallowed tokens at -inf whose
//     prefixes then only allow EOS). decode runs one row at Start, afterwards only real beams,
//     and a done prompt costs no rows at all (HF keeps padding it until the whole batch is
//     done). The filler always ranks below every real candidate, so the real hypotheses, their
//     order and their scores are the same: reference_test.go compares against a literal
//     reference that keeps the filler. Visible difference: where fewer than B items can be
//     reached, HF pads the returned list with filler sequences (score about -1e9/len or -inf);
//     decode returns a shorter list.
//  2. Arithmetic. Log-probabilities and sums are float64 (HF: float32 log-softmax of logits a
//     bf16 model produced, float32 beam scores), so near-ties can order differently from a GPU
//     HF run; exact ties are broken as a stable sort over HF's flattened (beam, token) index
//     would (beam slot, then token id; see better), while torch.topk leaves tie order
//     unspecified.
//  3. B = 1 runs this algorithm with one beam (HF would switch to greedy search, which also
//     stops at EOS but never keeps a second candidate).
//  4. MaxNewTokens finalisation follows BeamSearchScorer.finalize for both stop rules (the
//     vectorised version instead finalises the top-B ranks of the last step); this only
//     matters when the limit is below the trie depth.

// beamSearch is the state of one batched search: the users (prompts) and the rows of the
// scorer call in progress. Each decoding step follows BeamSearchScorer's order: score every
// (beam, token) pair and keep the top 2B (rankCandidates), walk them to finish hypotheses and
// pick the next beams (selectBeams), then apply the stop test (stopTest).
type beamSearch struct {
	t       Trie
	cfg     Config
	beams   int // B
	ret     int // hypotheses returned per prompt
	eos     int
	eosOnly []int
	users   []*userState
	cands   [][]int // candidate tokens of each row of the current scorer call
	lp      []float64
	parents []int // rows of the next Step: parent row and token
	toks    []int
}

func search(sc Scorer, t Trie, ix *Index, prompts [][]int, targets []int, cfg Config) ([]Result, error) {
	if cfg.Beams < 1 {
		return nil, fmt.Errorf("decode: %d beams", cfg.Beams)
	}
	s := newBeamSearch(t, ix, prompts, targets, cfg)
	if len(prompts) == 0 {
		return nil, nil
	}
	scores, err := sc.Start(prompts, s.cands)
	if err != nil {
		return nil, fmt.Errorf("decode: start: %w", err)
	}
	if len(scores) != len(prompts) {
		return nil, fmt.Errorf("decode: start returned %d rows for %d prompts", len(scores), len(prompts))
	}
	for step := 1; ; step++ {
		s.parents, s.toks = s.parents[:0], s.toks[:0]
		for _, u := range s.users {
			if u.done {
				continue
			}
			if err := s.advance(u, step, scores); err != nil {
				return nil, err
			}
		}
		if len(s.parents) == 0 {
			break
		}
		s.cands = s.nextCandidates()
		scores, err = sc.Step(s.parents, s.toks, s.cands)
		if err != nil {
			return nil, fmt.Errorf("decode: step %d: %w", step+1, err)
		}
		if len(scores) != len(s.parents) {
			return nil, fmt.Errorf("decode: step %d returned %d rows for %d", step+1, len(scores), len(s.parents))
		}
	}
	return s.results(), nil
}

// newBeamSearch opens one beam at the trie's root per prompt and, with targets, the target's
// node path for tracing.
func newBeamSearch(t Trie, ix *Index, prompts [][]int, targets []int, cfg Config) *beamSearch {
	B := cfg.Beams
	ret := cfg.Return
	if ret <= 0 || ret > B {
		ret = B
	}
	eos := t.EOS()
	s := &beamSearch{t: t, cfg: cfg, beams: B, ret: ret, eos: eos, eosOnly: []int{eos},
		users: make([]*userState, len(prompts)), cands: make([][]int, len(prompts))}
	root := t.Root()
	for i := range s.users {
		u := &userState{worst: 1e9, top: make([]cand, 0, 2*B)}
		u.beams = []beamRow{{node: root, hist: -1}}
		if targets != nil {
			u.startTrace(t, ix, targets[i])
		}
		u.row0 = i
		s.users[i] = u
		s.cands[i] = allowed(t, root, s.eosOnly)
	}
	return s
}

// startTrace records the node path of the target item (NotInTrie when it has none).
func (u *userState) startTrace(t Trie, ix *Index, target int) {
	u.trace = &Trace{Target: target}
	p, ok := ix.Path(target)
	if !ok {
		u.trace.How = NotInTrie
		return
	}
	n := t.Root()
	u.target = append(u.target, n)
	for _, tok := range p {
		n, _ = t.Next(n, tok)
		u.target = append(u.target, n)
	}
	u.tgtLive = true
}

// advance runs decoding step `step` for one unfinished user, appending its continued beams
// to the next Step's rows.
func (s *beamSearch) advance(u *userState, step int, scores []Scores) error {
	u.steps = step
	if err := s.rankCandidates(u, scores); err != nil {
		return err
	}
	if err := s.selectBeams(u, step); err != nil {
		return err
	}
	s.stopTest(u, step)
	return nil
}

// rankCandidates keeps the top 2B (beam, token) pairs by accumulated log-probability in
// u.top, best first (HF: next_token_scores + beam scores, then topk(2B)).
func (s *beamSearch) rankCandidates(u *userState, scores []Scores) error {
	u.top = u.top[:0]
	k := 2 * s.beams
	for slot, b := range u.beams {
		r := u.row0 + slot
		cs := s.cands[r]
		if len(scores[r].Logits) != len(cs) {
			return fmt.Errorf("decode: row %d: %d logits for %d candidates", r, len(scores[r].Logits), len(cs))
		}
		if err := checkFinite(r, scores[r], cs, s.cfg.Mode); err != nil {
			return err
		}
		s.lp = logProbs(s.lp, scores[r], s.cfg.Mode)
		for j, tok := range cs {
			c := cand{score: b.sum + s.lp[j], slot: int32(slot), j: int32(j), tok: int32(tok)}
			if math.IsInf(c.score, -1) { // a probability that underflowed: never a beam
				continue
			}
			u.offer(c, k)
		}
	}
	return nil
}

// offer inserts c into the sorted top-k list u.top if it ranks there.
func (u *userState) offer(c cand, k int) {
	if len(u.top) == k && !better(&c, &u.top[k-1]) {
		return
	}
	pos := len(u.top)
	if pos < k {
		u.top = append(u.top, c)
	} else {
		pos = k - 1
	}
	for pos > 0 && better(&c, &u.top[pos-1]) {
		u.top[pos] = u.top[pos-1]
		pos--
	}
	u.top[pos] = c
}

// selectBeams walks u.top in rank order (BeamSearchScorer.process): an EOS pair within the
// first B ranks is offered to the finished hypotheses, one at rank >= B is skipped, and the
// first B other pairs become the next beams.
func (s *beamSearch) selectBeams(u *userState, step int) error {
	u.next = u.next[:0]
	tgtNext := false
	for rank := range u.top {
		c := &u.top[rank]
		b := &u.beams[c.slot]
		if int(c.tok) == s.eos {
			if rank < s.beams {
				s.finishHypothesis(u, c, b, step)
			}
			continue
		}
		child, ok := s.t.Next(b.node, int(c.tok))
		if !ok {
			return fmt.Errorf("decode: token %d not in the trie below node %d", c.tok, b.node)
		}
		u.hist = append(u.hist, histEntry{tok: c.tok, parent: b.hist})
		u.next = append(u.next, beamRow{node: child, sum: c.score, hist: int32(len(u.hist) - 1)})
		if u.target != nil && step < len(u.target) && child == u.target[step] {
			tgtNext = true
		}
		s.parents = append(s.parents, u.row0+int(c.slot))
		s.toks = append(s.toks, int(c.tok))
		if len(u.next) == s.beams {
			break
		}
	}
	if u.target != nil && u.tgtLive {
		u.tgtLive = tgtNext
		if !tgtNext && !u.tgtHyp && u.trace.How == Kept {
			u.trace.How, u.trace.Step = PrunedBeam, step
		}
	}
	u.beams, u.next = u.next, u.beams
	return nil
}

// finishHypothesis offers beam b ended by the EOS candidate c to the finished hypotheses
// (BeamHypotheses.add) and notes whether that kept, rejected or displaced the target.
func (s *beamSearch) finishHypothesis(u *userState, c *cand, b *beamRow, step int) {
	u.hist = append(u.hist, histEntry{tok: c.tok, parent: b.hist})
	f := finished{hist: int32(len(u.hist) - 1), node: endNode(s.t, b.node), sum: c.score, n: step}
	f.score = normalise(f.sum, step, s.cfg.LengthPenalty)
	kept, removed := u.add(f, s.beams)
	if u.target == nil {
		return
	}
	if step == len(u.target)-1 && b.node == u.target[step-1] {
		if kept {
			u.tgtHyp = true
		} else {
			u.trace.How, u.trace.Step = Rejected, step
		}
	} else if u.tgtHyp && removed >= 0 && removed == u.target[len(u.target)-1] {
		u.tgtHyp = false
		u.trace.How, u.trace.Step = Displaced, step
	}
}

// stopTest ends a user's search after this step when the early_stopping=False heuristic
// says so, when MaxNewTokens is reached (open beams finalised as HF's finalize does), or
// when no beam is left; a done user's rows are taken out of the next Step.
func (s *beamSearch) stopTest(u *userState, step int) {
	if len(u.hyps) >= s.beams && len(u.top) > 0 {
		best := u.top[0].score
		if s.cfg.Stop == StopVectorized {
			best = math.Inf(-1)
			if len(u.beams) > 0 {
				best = u.beams[0].sum
			}
		}
		if u.worst >= normalise(best, step, s.cfg.LengthPenalty) {
			u.done = true
		}
	}
	if !u.done && s.cfg.MaxNewTokens > 0 && step >= s.cfg.MaxNewTokens {
		for _, b := range u.beams { // HF finalize: open beams join the hypotheses
			f := finished{hist: b.hist, node: b.node, sum: b.sum, n: step}
			f.score = normalise(b.sum, step, s.cfg.LengthPenalty)
			u.add(f, s.beams)
		}
		u.done = true
	}
	if len(u.beams) == 0 {
		u.done = true
	}
	if u.done {
		s.parents = s.parents[:len(s.parents)-len(u.beams)]
		s.toks = s.toks[:len(s.toks)-len(u.beams)]
		if u.target != nil && u.tgtLive && u.trace.How == Kept {
			u.trace.How, u.trace.Step = Stopped, step
		}
		u.beams = u.beams[:0]
	}
}

// nextCandidates numbers the rows of the next Step (unfinished users in order, their beams
// in order) and returns each row's allowed tokens.
func (s *beamSearch) nextCandidates() [][]int {
	var rowC [][]int
	row := 0
	for _, u := range s.users {
		if u.done {
			continue
		}
		u.row0 = row
		for _, b := range u.beams {
			rowC = append(rowC, allowed(s.t, b.node, s.eosOnly))
		}
		row += len(u.beams)
	}
	return rowC
}

// results returns each user's finished hypotheses, best first, cut to Return.
func (s *beamSearch) results() []Result {
	out := make([]Result, len(s.users))
	for i, u := range s.users {
		hs := u.returned(s.t, s.ret)
		out[i] = Result{Hyps: hs, Steps: u.steps, Trace: u.trace}
		if u.tgtHyp {
			end := u.target[len(u.target)-1]
			if !slices.ContainsFunc(hs, func(h Hypothesis) bool { return h.Node == end }) {
				u.trace.How, u.trace.Step = NotReturned, u.steps
			}
		}
	}
	return out
}

// returned orders the finished hypotheses as HF does (sorted by score, then popped from the
// end, so the later-added of equal scores comes first) and keeps the first ret.
func (u *userState) returned(t Trie, ret int) []Hypothesis {
	idx := make([]int, len(u.hyps))
	for k := range idx {
		idx[k] = k
	}
	sort.SliceStable(idx, func(a, b int) bool { return u.hyps[idx[a]].score < u.hyps[idx[b]].score })
	n := min(ret, len(idx))
	hs := make([]Hypothesis, n)
	for k := 0; k < n; k++ {
		f := u.hyps[idx[len(idx)-1-k]]
		hs[k] = Hypothesis{Tokens: u.tokens(f.hist), Node: f.node, Items: t.ItemsAt(f.node), SumLogProb: f.sum, Score: f.score}
	}
	return hs
}
