package decode

import (
	"fmt"
	"math"
)

// Scores are the next-token scores of one row, restricted to its candidate tokens.
type Scores struct {
	// Logits holds one raw logit per candidate token, in the order of the row's cands.
	Logits []float32
	// LogZ is log-sum-exp of the logits over the whole vocabulary. Only the after-softmax
	// mode reads it; a scorer used only in the before-softmax mode may leave it 0.
	LogZ float64
}

// Scorer serves next-token logits to the search, a batch of rows per call. Only candidate
// logits and one normaliser per row cross the interface, so a model-backed scorer can gather
// them where the logits are computed.
//
// Rows are stateful: a call's rows become the "previous rows" of the next call, which refers to
// them by index. A KV-cache scorer reorders (gathers) its cache by parents before appending the
// new tokens; a no-cache scorer keeps each row's token sequence and re-runs it (see SeqScorer).
// Rows of the previous call that no parent refers to are dropped (finished beams and users).
// The returned Scores (and their Logits) may be reused by the scorer on its next call: the
// search reads them before calling again and never keeps them. Calls are sequential.
type Scorer interface {
	// Start begins a new search (forgetting all earlier rows) with one row per prompt: the
	// prompt's tokens, up to and including the position that predicts the first response
	// token. cands[i] are the allowed first tokens of prompt i (sorted).
	Start(prompts [][]int, cands [][]int) ([]Scores, error)
	// Step makes a new set of rows: row r continues row parents[r] of the previous call (Start
	// or Step) with token tokens[r]; cands[r] are its allowed next tokens (sorted). Several new
	// rows may share a parent. parents is not necessarily sorted.
	Step(parents []int, tokens []int, cands [][]int) ([]Scores, error)
}

// logSumExp32 returns log(sum(exp(x))) in float64 (-Inf for an empty slice).
func logSumExp32(x []float32) float64 {
	if len(x) == 0 {
		return math.Inf(-1)
	}
	m := float64(x[0])
	for _, v := range x[1:] {
		if float64(v) > m {
			m = float64(v)
		}
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// ScoresFromLogits builds a row's Scores from logits over the whole vocabulary.
func ScoresFromLogits(vocab []float32, cands []int) Scores {
	s := Scores{Logits: make([]float32, len(cands)), LogZ: logSumExp32(vocab)}
	for j, tok := range cands {
		s.Logits[j] = vocab[tok]
	}
	return s
}

// logProbs writes the candidates' log-probabilities into dst (resized) for the given mode.
func logProbs(dst []float64, s Scores, mode Mode) []float64 {
	dst = dst[:0]
	var z float64
	switch mode {
	case AfterSoftmax:
		z = s.LogZ
	case BeforeSoftmax:
		z = logSumExp32(s.Logits)
	}
	for _, l := range s.Logits {
		dst = append(dst, float64(l)-z)
	}
	return dst
}

// NonFiniteError reports a row whose scores hold NaN or an infinity: the model's weights or
// adapter hold non-finite values (or its activations overflowed). The search stops with it:
// skipping such tokens would return empty or arbitrary lists that look like results.
type NonFiniteError struct {
	Row   int     // the row of the scorer call
	Token int     // the candidate token, or -1 for the row's normaliser (LogZ)
	Value float64 // NaN, +Inf or -Inf
}

func (e *NonFiniteError) Error() string {
	what := fmt.Sprintf("the logit of token %d", e.Token)
	if e.Token < 0 {
		what = "the log-sum-exp over the vocabulary"
	}
	return fmt.Sprintf("row %d: %s is %v: the model's scores are not finite (NaN or infinite weights in the model or the adapter, or an overflow)", e.Row, what, e.Value)
}

// checkFinite returns a *NonFiniteError for the first non-finite value of row r's scores that
// mode reads.
func checkFinite(r int, s Scores, cands []int, mode Mode) error {
	for j, l := range s.Logits {
		if v := float64(l); math.IsNaN(v) || math.IsInf(v, 0) {
			return &NonFiniteError{Row: r, Token: cands[j], Value: v}
		}
	}
	if mode == AfterSoftmax && (math.IsNaN(s.LogZ) || math.IsInf(s.LogZ, 0)) {
		return &NonFiniteError{Row: r, Token: -1, Value: s.LogZ}
	}
	return nil
}

// SeqScorer is the simplest Scorer: it keeps every row's full token sequence (prompt followed by
// the generated tokens) and hands a whole batch of sequences to Score, which returns each
// sequence's next-token Scores restricted to cands. It is the in-memory reference for tests
// and the "no KV cache" path of a model-backed scorer (Score runs a full forward pass).
type SeqScorer struct {
	Score func(seqs [][]int, cands [][]int) ([]Scores, error)
	rows  [][]int
}

// newFuncScorer wraps a function returning the logits over the whole vocabulary after a full
// sequence (prompt followed by generated tokens) into a SeqScorer.
func newFuncScorer(logits func(seq []int) []float32) *SeqScorer {
	return &SeqScorer{Score: func(seqs [][]int, cands [][]int) ([]Scores, error) {
		out := make([]Scores, len(seqs))
		for i, s := range seqs {
			out[i] = ScoresFromLogits(logits(s), cands[i])
		}
		return out, nil
	}}
}

// Start implements Scorer.
func (s *SeqScorer) Start(prompts [][]int, cands [][]int) ([]Scores, error) {
	if len(prompts) != len(cands) {
		return nil, fmt.Errorf("seqscorer: %d prompts but %d candidate lists", len(prompts), len(cands))
	}
	s.rows = make([][]int, len(prompts))
	for i, p := range prompts {
		s.rows[i] = append([]int(nil), p...)
	}
	return s.Score(s.rows, cands)
}

// Step implements Scorer.
func (s *SeqScorer) Step(parents []int, tokens []int, cands [][]int) ([]Scores, error) {
	if len(parents) != len(tokens) || len(parents) != len(cands) {
		return nil, fmt.Errorf("seqscorer: %d parents, %d tokens, %d candidate lists", len(parents), len(tokens), len(cands))
	}
	rows := make([][]int, len(parents))
	for r, p := range parents {
		if p < 0 || p >= len(s.rows) {
			return nil, fmt.Errorf("seqscorer: parent %d of row %d outside the %d previous rows", p, r, len(s.rows))
		}
		prev := s.rows[p]
		row := make([]int, len(prev)+1)
		copy(row, prev)
		row[len(prev)] = tokens[r]
		rows[r] = row
	}
	s.rows = rows
	return s.Score(s.rows, cands)
}
