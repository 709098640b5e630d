package runtime

import (
	"fmt"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/llama"
)

// ScorerOptions configure NewScorer.
type ScorerOptions struct {
	Model   ModelOptions // session, cache folder; LoRA is taken from Adapter
	Adapter *Adapter     // nil: the base model
	// KVCache decodes with prefill and decode-step graphs that keep keys and values between
	// steps; without it every step reruns the whole sequence (the reference path).
	KVCache bool
	// MaxRows bounds the rows of one ONNX Runtime call (0: 64); larger requests are chunked.
	MaxRows int
}

// Scorer is a decode.Scorer backed by ONNX Runtime; Close releases its sessions.
type Scorer interface {
	decode.Scorer
	Close() error
}

// NewScorer loads the checkpoint (and adapter) for beam search.
func NewScorer(dir string, o ScorerOptions) (Scorer, error) {
	if o.MaxRows <= 0 {
		o.MaxRows = 64
	}
	mo := o.Model
	if o.Adapter != nil {
		mo.LoRA = &o.Adapter.Spec
	}
	if o.KVCache {
		return newKVScorer(dir, mo, o)
	}
	mo.Logits = llama.LogitsFullVocab
	m, err := Load(dir, mo)
	if err != nil {
		return nil, err
	}
	if o.Adapter != nil {
		if err := m.SetAdapter(o.Adapter); err != nil {
			m.Close()
			return nil, err
		}
	}
	return &seqScorer{m: m, maxRows: o.MaxRows}, nil
}

// seqScorer keeps whole sequences and reruns the forward pass over them at every step.
type seqScorer struct {
	m       *Model
	maxRows int
	seqs    [][]int64
}

func (s *seqScorer) Close() error { return s.m.Close() }

func (s *seqScorer) Start(prompts [][]int, cands [][]int) ([]decode.Scores, error) {
	s.seqs = make([][]int64, len(prompts))
	for i, p := range prompts {
		s.seqs[i] = make([]int64, len(p))
		for j, id := range p {
			s.seqs[i][j] = int64(id)
		}
	}
	return s.score(cands)
}

func (s *seqScorer) Step(parents []int, tokens []int, cands [][]int) ([]decode.Scores, error) {
	next := make([][]int64, len(parents))
	for r, p := range parents {
		if p < 0 || p >= len(s.seqs) {
			return nil, fmt.Errorf("scorer: parent %d of row %d outside the previous %d rows", p, r, len(s.seqs))
		}
		next[r] = append(append(make([]int64, 0, len(s.seqs[p])+1), s.seqs[p]...), int64(tokens[r]))
	}
	s.seqs = next
	return s.score(cands)
}

func (s *seqScorer) score(cands [][]int) ([]decode.Scores, error) {
	out := make([]decode.Scores, 0, len(s.seqs))
	v := s.m.Config.VocabSize
	for lo := 0; lo < len(s.seqs); lo += s.maxRows {
		hi := min(lo+s.maxRows, len(s.seqs))
		b := NewBatch(s.seqs[lo:hi])
		index := make([]int64, hi-lo)
		for i := range index {
			index[i] = b.Index(i, b.Lengths[i]-1)
		}
		logits, err := s.m.Logits(b, index, nil, 0)
		if err != nil {
			return nil, err
		}
		for i := range index {
			row := logits[i*v : (i+1)*v]
			out = append(out, decode.ScoresFromLogits(row, cands[lo+i]))
		}
	}
	return out, nil
}
