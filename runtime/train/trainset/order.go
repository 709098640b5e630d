package trainset

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// order returns the permutation of example indices of one epoch (epoch counts from 0). It
// depends on (seed, epoch) alone, so a resumed run rebuilds the order of any epoch from its
// step count; the official sampler (accelerate's SeedableRandomSampler) likewise reseeds with
// seed + epoch at every epoch.
//
// The shuffle is our own Fisher-Yates over math/rand/v2's PCG source, whose output sequence
// is fixed by its algorithm (PCG-DXSM), and not rand.Shuffle, whose use of the source is not
// promised to stay the same across Go releases: a checkpoint must resume to the same order.
//
// The official order: transformers' TrainingArguments seed = data_seed = 42, and its
// AcceleratorConfig turns on use_seedable_sampler, whose SeedableRandomSampler reseeds with
// seed + epoch. Ours has the same property with another permutation (it is not
// torch.randperm). train_lml.py also shuffles its dataset once with the seed before the
// sampler does, which changes nothing of the kind.
func order(n int, seed uint64, epoch int) []int {
	src := rand.NewPCG(seed, uint64(epoch))
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(uniform(src, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// uniform returns a uniformly distributed integer in [0, n) (n > 0): the high word of
// x·n, redrawn in the rare case where the low word shows a biased draw (Lemire's method).
func uniform(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		threshold := -n % n // 2^64 mod n: draws below it would over-represent some values
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// Order is the epoch's permutation of the set's examples: a function of (Options.Seed, epoch)
// alone.
func (s *Set) Order(epoch int) []int { return order(len(s.Examples), s.opts.Seed, epoch) }

// Locate maps a global step count (steps done since the start of training) to the epoch and
// the step within it: where a resumed run continues.
func (s *Set) Locate(global int) (epoch, step int) {
	n := s.StepsPerEpoch()
	return global / n, global % n
}

// StepRows returns the example indices of one step of an epoch's order, in order: the slice
// order[step·Batch : (step+1)·Batch], or what is left of it for the last step, completed
// with the order's first indices (cyclically) when Options.FillLast is set.
func (s *Set) StepRows(order []int, step int) ([]int, error) {
	if len(order) != len(s.Examples) {
		return nil, fmt.Errorf("epoch order of %d indices for %d examples", len(order), len(s.Examples))
	}
	if step < 0 || step >= s.StepsPerEpoch() {
		return nil, fmt.Errorf("step %d outside the epoch's %d steps", step, s.StepsPerEpoch())
	}
	from := step * s.opts.Batch
	rows := order[from:min(from+s.opts.Batch, len(order))]
	if !s.opts.FillLast || len(rows) == s.opts.Batch {
		return rows, nil
	}
	filled := make([]int, 0, s.opts.Batch)
	filled = append(filled, rows...)
	for i := 0; len(filled) < s.opts.Batch; i++ {
		filled = append(filled, order[i%len(order)])
	}
	return filled, nil
}
