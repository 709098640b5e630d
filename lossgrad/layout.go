package lossgrad

import "fmt"

// TokenID is any integer type a tokenizer or trie uses for token ids.
type TokenID interface {
	~int | ~int32 | ~int64 | ~uint16 | ~uint32
}

// DenseLogitSlices describes rows of a dense [positions, vocab] logits matrix as LogitSlices
// (the LML layout: every position holds the whole vocabulary). offsets is reused when its
// capacity allows; targetIDs are the positives' token ids.
func DenseLogitSlices[F Float, T TokenID](logits []F, vocab int, targetIDs []T, offsets []int, targets []int) (LogitSlices[F], error) {
	n := len(targetIDs)
	if vocab < 1 || len(logits) != n*vocab {
		return LogitSlices[F]{}, fmt.Errorf("dense logits: %d values for %d positions of vocabulary %d", len(logits), n, vocab)
	}
	offsets, targets = offsets[:0], targets[:0]
	for i, id := range targetIDs {
		if int(id) < 0 || int(id) >= vocab {
			return LogitSlices[F]{}, fmt.Errorf("position %d: target token %d out of range [0,%d)", i, int(id), vocab)
		}
		offsets = append(offsets, i*vocab)
		targets = append(targets, int(id))
	}
	offsets = append(offsets, n*vocab)
	return LogitSlices[F]{Logits: logits, Offsets: offsets, Targets: targets}, nil
}

// GatherAllowed builds the MSL/BEAR layout from row-major logits, width columns per position:
// position i keeps the logits of its columns cols[i] (its allowed tokens, in the trie's order)
// and its target is targets[i], an index into cols[i]. The columns are token ids when the rows
// span the vocabulary, or indices into the subset of it the rows hold. b's slices are reused
// when their capacity allows.
func GatherAllowed[F Float, C TokenID](rows []F, width int, cols [][]C, targets []int, b *LogitSlices[F]) error {
	n := len(cols)
	if len(targets) != n {
		return fmt.Errorf("%d allowed sets for %d targets", n, len(targets))
	}
	if width < 1 || len(rows) != n*width {
		return fmt.Errorf("logits: %d values for %d positions of %d columns", len(rows), n, width)
	}
	b.Logits, b.Offsets, b.Targets = b.Logits[:0], append(b.Offsets[:0], 0), b.Targets[:0]
	for i, cs := range cols {
		row := rows[i*width : (i+1)*width]
		if targets[i] < 0 || targets[i] >= len(cs) {
			return fmt.Errorf("position %d: target index %d outside its %d allowed tokens", i, targets[i], len(cs))
		}
		for _, c := range cs {
			if int(c) < 0 || int(c) >= width {
				return fmt.Errorf("position %d: column %d out of range [0,%d)", i, int(c), width)
			}
			b.Logits = append(b.Logits, row[c])
		}
		b.Offsets = append(b.Offsets, len(b.Logits))
		b.Targets = append(b.Targets, targets[i])
	}
	return nil
}

// ScatterAllowed writes the gradient of GatherAllowed's slices back into row-major rows of width
// columns: zero everywhere except at the gathered columns (the official code masks the other
// tokens to -inf, so their gradient is 0).
func ScatterAllowed[F Float, C TokenID](grad []F, cols [][]C, width int, rows []F) error {
	if len(rows) != len(cols)*width {
		return fmt.Errorf("gradient rows: %d values for %d positions of %d columns", len(rows), len(cols), width)
	}
	clear(rows)
	k := 0
	for i, cs := range cols {
		row := rows[i*width : (i+1)*width]
		if k+len(cs) > len(grad) {
			return fmt.Errorf("gradient has %d values, fewer than the allowed tokens", len(grad))
		}
		for j, c := range cs {
			row[c] = grad[k+j]
		}
		k += len(cs)
	}
	if k != len(grad) {
		return fmt.Errorf("gradient has %d values for %d allowed tokens", len(grad), k)
	}
	return nil
}
