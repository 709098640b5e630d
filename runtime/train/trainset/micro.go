package trainset

import (
	"slices"

	"github.com/bearrec/bear/tokenize"
)

// fill writes the rows of a micro-batch (mb.B rows, each at most mb.T tokens) into mb's
// buffers, overwriting whatever an earlier step left there.
func (b *Batcher) fill(mb *MicroBatch, group int, rows []int) {
	mb.Group, mb.Tokens = group, 0
	mb.Rows = append(mb.Rows[:0], rows...)
	mb.Lengths = mb.Lengths[:0]
	mb.Index, mb.Targets, mb.Allowed, mb.TargetIdx = mb.Index[:0], mb.Targets[:0], mb.Allowed[:0], mb.TargetIdx[:0]
	for r, e := range rows {
		ex := &b.set.Examples[e]
		b.writeRow(mb, r, ex.IDs)
		mb.Lengths = append(mb.Lengths, len(ex.IDs))
		mb.Tokens += len(ex.IDs)
		// Label t is predicted by the logit of token t-1 (the official shift, compute_loss:
		// logits[:, -C-1:][..., :-1] against labels[:, -C-1:][..., 1:], C the padded response
		// length); LabelStart >= 1 since BOS is never supervised.
		rowStart := r*mb.T + mb.T - len(ex.IDs)
		for j, target := range ex.Targets() {
			mb.Index = append(mb.Index, int64(rowStart+ex.LabelStart+j-1))
			mb.Targets = append(mb.Targets, target)
			mb.TargetIdx = append(mb.TargetIdx, int(ex.TargetIdx[j]))
		}
		mb.Allowed = append(mb.Allowed, ex.Allowed...)
	}
	b.union(mb)
}

// writeRow left-pads ids into row r: as ortrun.NewTokenBatch lays sequences out.
//
// The official padding (train_bear.py): tokenizer.padding_side = "left", "<pad>" added as id
// 128256, DataCollatorForSeq2Seq with pad_to_multiple_of=8 (labels padded with -100) and
// constrain_mask left-padded with True where the label is -100. Padding is masked, so neither
// the pad id nor the padded length changes a loss: we pad to Options.Bucket instead of 8 and
// write tokenize.PadID. The collator passes no position_ids, so transformers numbers the slots
// 0..T-1, padding included; RoPE makes attention depend on differences of positions only, so
// counting real tokens from 0 (as the inference path does) gives the same results in exact
// arithmetic.
func (b *Batcher) writeRow(mb *MicroBatch, r int, ids []int) {
	row := r * mb.T
	pad := mb.T - len(ids)
	for t := range pad {
		mb.IDs[row+t], mb.Mask[row+t], mb.Pos[row+t] = tokenize.PadID, 0, 1
	}
	for t, id := range ids {
		k := row + pad + t
		mb.IDs[k], mb.Mask[k], mb.Pos[k] = int64(id), 1, int64(t)
	}
}

// union builds mb.Union (sorted, distinct tokens of every allowed set) and mb.AllowedIdx
// through the Batcher's token tables, which cost nothing to reset: a token belongs to the
// union under construction when its seen entry equals the current stamp.
func (b *Batcher) union(mb *MicroBatch) {
	b.stamp++
	if b.stamp == 0 { // wrapped: old stamps could collide
		clear(b.seen)
		b.stamp = 1
	}
	mb.Union = mb.Union[:0]
	total := 0
	for _, set := range mb.Allowed {
		total += len(set)
		for _, tok := range set {
			if b.seen[tok] != b.stamp {
				b.seen[tok] = b.stamp
				mb.Union = append(mb.Union, int64(tok))
			}
		}
	}
	slices.Sort(mb.Union)
	for i, tok := range mb.Union {
		b.where[tok] = int32(i)
	}
	// One backing array for every AllowedIdx slice, sized first so that it never moves.
	mb.idxArena = slices.Grow(mb.idxArena[:0], total)
	mb.AllowedIdx = mb.AllowedIdx[:0]
	for _, set := range mb.Allowed {
		from := len(mb.idxArena)
		for _, tok := range set {
			mb.idxArena = append(mb.idxArena, b.where[tok])
		}
		mb.AllowedIdx = append(mb.AllowedIdx, mb.idxArena[from:len(mb.idxArena):len(mb.idxArena)])
	}
}
