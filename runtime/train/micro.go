package train

import (
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime"
	"github.com/bearrec/bear/trainset"
)

// forwardLoss runs the forward pass of one micro-batch, computes its un-normalised loss and
// leaves the cotangent of the graph's logits in s.cot (and the diagnostics in s.diag).
func (s *stepper) forwardLoss(mb *trainset.MicroBatch, seed int64) (lossgrad.Result, error) {
	in := runtime.GraphInputs{
		Batch: runtime.TokenBatch{B: mb.B, T: mb.T, IDs: mb.IDs, Mask: mb.Mask, Pos: mb.Pos},
		Index: mb.Index, DropoutSeed: seed,
	}
	subset := s.tr.Manifest.Logits == llama.LogitsSubset
	if subset {
		in.Subset = mb.Union
	}
	logits, err := s.tr.Forward(in)
	if err != nil {
		return lossgrad.Result{}, err
	}
	n := len(mb.Targets)
	if cap(s.diag) < n {
		s.diag = make([]lossgrad.Position, n)
	}
	s.diag = s.diag[:n]
	if subset {
		s.gatherAllowed(mb, logits)
	} else {
		if s.slices, err = lossgrad.DenseLogitSlices(logits, s.tr.Config.VocabSize, mb.Targets, s.slices.Offsets, s.slices.Targets); err != nil {
			return lossgrad.Result{}, err
		}
	}
	s.grad = resize(s.grad, len(s.slices.Logits))
	r, err := s.obj.Compute(s.slices, s.grad, s.diag)
	if err != nil {
		return lossgrad.Result{}, err
	}
	if subset {
		s.scatterAllowed(mb, len(logits))
	} else {
		s.cot = s.grad // LML: the loss's layout is the graph's [n, vocab]
	}
	return r, nil
}

// gatherAllowed lays the subset logits [n, u] out as lossgrad's slices: position p keeps the
// logits of its own allowed tokens, in the trie's order.
func (s *stepper) gatherAllowed(mb *trainset.MicroBatch, logits []float32) {
	u := len(mb.Union)
	b := &s.slices
	b.Logits, b.Offsets, b.Targets = b.Logits[:0], append(b.Offsets[:0], 0), b.Targets[:0]
	for p, idx := range mb.AllowedIdx {
		row := logits[p*u : (p+1)*u]
		for _, j := range idx {
			b.Logits = append(b.Logits, row[j])
		}
		b.Offsets = append(b.Offsets, len(b.Logits))
		b.Targets = append(b.Targets, mb.TargetIdx[p])
	}
}

// scatterAllowed writes the loss gradient back into the graph's [n, u] layout; tokens outside a
// position's allowed set get 0 (the official code masks them to -inf, so their gradient is 0).
func (s *stepper) scatterAllowed(mb *trainset.MicroBatch, size int) {
	u := len(mb.Union)
	s.cot = resize(s.cot, size)
	clear(s.cot)
	for p, idx := range mb.AllowedIdx {
		g := s.grad[s.slices.Offsets[p]:s.slices.Offsets[p+1]]
		for k, j := range idx {
			s.cot[p*u+int(j)] = g[k]
		}
	}
}

func resize(x []float32, n int) []float32 {
	if cap(x) < n {
		return make([]float32, n)
	}
	return x[:n]
}
