package ortrun

import (
	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
)

// ScorerOptions configure NewScorer.
type ScorerOptions struct {
	Model   ModelOptions  // session, cache folder; LoRA is taken from Adapter
	Adapter *peft.Adapter // nil: the base model
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
func NewScorer(ck *hf.Checkpoint, o ScorerOptions) (Scorer, error) {
	if o.MaxRows <= 0 {
		o.MaxRows = 64
	}
	mo := o.Model
	if o.Adapter != nil {
		mo.LoRA = &o.Adapter.Spec
	}
	if o.KVCache {
		return newKVScorer(ck, mo, o)
	}
	mo.Logits = llama.LogitsFullVocab
	m, err := Load(ck, mo)
	if err != nil {
		return nil, err
	}
	if o.Adapter != nil {
		if err := m.SetAdapter(o.Adapter); err != nil {
			m.Close()
			return nil, err
		}
	}
	return &seqScorer{SeqScorer: decode.SeqScorer{Score: func(seqs [][]int, cands [][]int) ([]decode.Scores, error) {
		return scoreSequences(m, seqs, cands, o.MaxRows)
	}}, m: m}, nil
}

// seqScorer is the no-cache path: decode.SeqScorer keeps whole sequences and reruns the forward
// pass over them at every step.
type seqScorer struct {
	decode.SeqScorer
	m *Model
}

func (s *seqScorer) Close() error { return s.m.Close() }

// scoreSequences runs the forward pass over whole sequences, maxRows at a time, and returns the
// next-token scores after each, restricted to its candidates.
func scoreSequences(m *Model, seqs [][]int, cands [][]int, maxRows int) ([]decode.Scores, error) {
	out := make([]decode.Scores, 0, len(seqs))
	v := m.Config.VocabSize
	for lo := 0; lo < len(seqs); lo += maxRows {
		hi := min(lo+maxRows, len(seqs))
		b := NewTokenBatch(seqs[lo:hi])
		index := make([]int64, hi-lo)
		for i := range index {
			index[i] = b.Index(i, b.Lengths[i]-1)
		}
		logits, err := m.Logits(b, index, nil, 0)
		if err != nil {
			return nil, err
		}
		for i := range index {
			out = append(out, decode.ScoresFromLogits(logits[i*v:(i+1)*v], cands[lo+i]))
		}
	}
	return out, nil
}
