package trainset

import (
	"cmp"
	"fmt"
	"slices"
)

// MicroBatch is one forward/backward pass: B left-padded sequences of T slots, in the layout
// of ortrun.NewTokenBatch, with what the loss needs at each supervised position.
type MicroBatch struct {
	B, T int
	// IDs, Mask, Pos are [B·T], row-major. Padding comes first in each row: id tokenize.PadID, mask 0,
	// position 1; real tokens have mask 1 and positions 0, 1, ... counted from the row's first
	// real token.
	IDs, Mask, Pos []int64
	// Index[p] is the flat [B·T] slot of the logit that predicts supervised token p: the slot
	// of the token before it. Positions are in row-major order (row by row, left to right).
	Index []int64
	// Targets[p] is the token id supervised at position p.
	Targets []int
	// Allowed[p] is the sorted set of tokens allowed at position p, shared with the item trie:
	// read-only.
	Allowed [][]int
	// Union is the sorted union of every Allowed set: the vocabulary columns the loss needs.
	Union []int64
	// AllowedIdx[p][k] is the index in Union of Allowed[p][k].
	AllowedIdx [][]int32
	// TargetIdx[p] is the index of Targets[p] in Allowed[p] (and in AllowedIdx[p]).
	TargetIdx []int
	// Group is the index of the normalisation group within the step.
	Group int
	// Rows are the example indices of the B rows; Lengths their token counts.
	Rows, Lengths []int
	// Tokens is the number of real (unpadded) tokens.
	Tokens int

	idxArena []int32 // backing array of AllowedIdx
}

// Group is one set of consecutive sequences of a step whose loss is normalised together (one
// device of the official 8-GPU run).
type Group struct {
	// Rows are the example indices of the group, in the epoch's order.
	Rows []int
	// Positions is the number of supervised positions of the group (over all its micro-batches).
	Positions int
	// Micro are the group's micro-batches, shortest sequences first.
	Micro []*MicroBatch
}

// Step is one optimizer step.
type Step struct {
	// Epoch and Index locate the step (both from 0).
	Epoch, Index int
	// Rows are the example indices of the step in the epoch's order (read-only).
	Rows []int
	// Groups split Rows into runs of Options.NormGroup (the last may be shorter).
	Groups []Group
	// Micro lists every micro-batch, group after group.
	Micro []*MicroBatch
	// Tokens and Positions count real tokens and supervised positions.
	Tokens, Positions int
}

// Batcher builds steps of a Set, reusing its micro-batches' buffers from one step to the next
// (by shape). A Step and its micro-batches stay valid until the next call of Step on the same
// Batcher: use two Batchers to prepare one step while another runs. Not safe for concurrent use.
type Batcher struct {
	set   *Set
	epoch int
	order []int // cached order of epoch

	free map[[2]int][]*MicroBatch // idle micro-batches by (B, T)
	step Step

	byLength []int    // scratch: a group's rows sorted by length
	seen     []uint32 // seen[token] == stamp: token already in the Union being built
	stamp    uint32
	where    []int32 // where[token]: index of token in the Union being built
}

// NewBatcher returns a Batcher of s.
func (s *Set) NewBatcher() *Batcher {
	return &Batcher{set: s, epoch: -1, free: map[[2]int][]*MicroBatch{},
		seen: make([]uint32, s.tableSize), where: make([]int32, s.tableSize)}
}

// Step builds step (from 0) of epoch (from 0).
func (b *Batcher) Step(epoch, step int) (*Step, error) {
	if epoch < 0 {
		return nil, fmt.Errorf("epoch %d: epochs count from 0", epoch)
	}
	if b.order == nil || b.epoch != epoch {
		b.order, b.epoch = b.set.Order(epoch), epoch
	}
	rows, err := b.set.StepRows(b.order, step)
	if err != nil {
		return nil, fmt.Errorf("epoch %d: %w", epoch, err)
	}
	b.recycle()
	st := &b.step
	st.Epoch, st.Index, st.Rows, st.Tokens, st.Positions = epoch, step, rows, 0, 0
	// Groups are consecutive runs of the step's rows, as in the official run (train_bear.py:
	// micro_batch_size = batch_size // WORLD_SIZE = 128 // 8, no gradient accumulation, the 8
	// processes of cmd/run.sh launched by accelerate in cmd/run.py; each device normalises its
	// loss over its 16 and DDP averages the gradients). accelerate's BatchSamplerShard (without
	// split_batches) deals the sampler's batches of 16 round-robin to the devices, so a step is
	// 128 consecutive indices of the order and device i holds the i-th 16. With even_batches
	// (its default) a short last round is completed from the start of the order
	// (Options.FillLast); one device (HF's DataLoader, drop_last false) keeps the short batch.
	size := b.set.opts.NormGroup
	for g := 0; g*size < len(rows); g++ {
		first := len(st.Micro)
		group := Group{Rows: rows[g*size : min((g+1)*size, len(rows))]}
		b.addGroup(g, group.Rows)
		group.Micro = st.Micro[first:len(st.Micro):len(st.Micro)]
		for _, mb := range group.Micro {
			group.Positions += len(mb.Targets)
			st.Tokens += mb.Tokens
		}
		st.Positions += group.Positions
		st.Groups = append(st.Groups, group)
	}
	return st, nil
}

// recycle returns the previous step's micro-batches to the free lists.
func (b *Batcher) recycle() {
	for _, mb := range b.step.Micro {
		key := [2]int{mb.B, mb.T}
		b.free[key] = append(b.free[key], mb)
	}
	clear(b.step.Micro)
	b.step.Micro = b.step.Micro[:0]
	b.step.Groups = b.step.Groups[:0]
}

// addGroup sorts a group's rows by length and cuts them into ceil(n/Micro) micro-batches of
// near-equal size (the first n mod k one larger), so that each is padded little.
func (b *Batcher) addGroup(g int, rows []int) {
	ex := b.set.Examples
	b.byLength = append(b.byLength[:0], rows...)
	slices.SortStableFunc(b.byLength, func(x, y int) int { return cmp.Compare(len(ex[x].IDs), len(ex[y].IDs)) })
	n := len(b.byLength)
	k := (n + b.set.opts.Micro - 1) / b.set.opts.Micro
	from := 0
	for i := range k {
		size := n / k
		if i < n%k {
			size++
		}
		chunk := b.byLength[from : from+size]
		from += size
		mb := b.take(len(chunk), b.set.Bucket(len(ex[chunk[len(chunk)-1]].IDs)))
		b.fill(mb, g, chunk)
		b.step.Micro = append(b.step.Micro, mb)
	}
}

// take returns an idle micro-batch of shape (B, T), or a new one.
func (b *Batcher) take(rows, slots int) *MicroBatch {
	key := [2]int{rows, slots}
	if list := b.free[key]; len(list) > 0 {
		mb := list[len(list)-1]
		b.free[key] = list[:len(list)-1]
		return mb
	}
	n := rows * slots
	return &MicroBatch{B: rows, T: slots, IDs: make([]int64, n), Mask: make([]int64, n), Pos: make([]int64, n)}
}
