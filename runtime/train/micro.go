package train

import (
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/trainset"
)

// Shape buckets of the logits: the supervised positions n and the subset's columns u are
// padded up to these multiples (padding rows repeat a real slot, padding columns a real token;
// both get a zero cotangent), so that ONNX Runtime and the trainer see a few shapes and reuse
// their buffers instead of allocating anew for every micro-batch.
const (
	positionBucket = 32
	subsetBucket   = 64
)

// forwardLoss runs the forward pass of one micro-batch, computes its un-normalised loss and
// leaves the cotangent of the graph's logits in s.cot (and the diagnostics in s.diag).
func (s *stepper) forwardLoss(mb *trainset.MicroBatch, seed int64) (lossgrad.Result, error) {
	n := len(mb.Targets)
	s.index = padded(s.index, mb.Index, roundUp(n, positionBucket))
	in := ortrun.GraphInputs{
		Batch: ortrun.TokenBatch{B: mb.B, T: mb.T, IDs: mb.IDs, Mask: mb.Mask, Pos: mb.Pos},
		Index: s.index, DropoutSeed: seed,
	}
	subset := s.tr.Manifest.Logits == llama.LogitsSubset
	if subset {
		s.subset = padded(s.subset, mb.Union, roundUp(len(mb.Union), subsetBucket))
		in.Subset = s.subset
	}
	logits, err := s.tr.Forward(in)
	if err != nil {
		return lossgrad.Result{}, err
	}
	if cap(s.diag) < n {
		s.diag = make([]lossgrad.Position, n)
	}
	s.diag = s.diag[:n]
	s.cot = resize(s.cot, len(logits))
	if subset {
		// the subset logits [n, u] (u the padded row width) as lossgrad's slices: position p
		// keeps the logits of its own allowed tokens, in the trie's order
		u := len(s.subset)
		if err := lossgrad.GatherAllowed(logits[:n*u], u, mb.AllowedIdx, mb.TargetIdx, &s.slices); err != nil {
			return lossgrad.Result{}, err
		}
		s.grad = resize(s.grad, len(s.slices.Logits))
	} else {
		// LML: the loss's layout is the graph's [n, vocab]; its gradient goes straight into the
		// cotangent's first n rows.
		v := s.tr.Config.VocabSize
		if s.slices, err = lossgrad.DenseLogitSlices(logits[:n*v], v, mb.Targets, s.slices.Offsets, s.slices.Targets); err != nil {
			return lossgrad.Result{}, err
		}
		s.grad = s.cot[:n*v]
		clear(s.cot[n*v:])
	}
	r, err := s.obj.Compute(s.slices, s.grad, s.diag)
	if err != nil {
		return lossgrad.Result{}, err
	}
	if subset {
		u := len(s.subset)
		clear(s.cot[n*u:]) // the padding positions
		if err := lossgrad.ScatterAllowed(s.grad, mb.AllowedIdx, u, s.cot[:n*u]); err != nil {
			return lossgrad.Result{}, err
		}
	}
	return r, nil
}

// padded copies src into dst's buffer and repeats src[0] up to n entries.
func padded(dst, src []int64, n int) []int64 {
	dst = append(dst[:0], src...)
	for len(dst) < n {
		dst = append(dst, src[0])
	}
	return dst
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

func resize(x []float32, n int) []float32 {
	if cap(x) < n {
		return make([]float32, n)
	}
	return x[:n]
}
