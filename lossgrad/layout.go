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

// GatherAllowed builds the MSL/BEAR layout from dense [positions, vocab] logits: position i
// keeps the logits of allowed[i] (the trie's valid next tokens, in that order) and its
// target is the index of targetIDs[i] in allowed[i]. b's slices are reused when their
// capacity allows.
func GatherAllowed[F Float, T TokenID](dense []F, vocab int, allowed [][]T, targetIDs []T, b *LogitSlices[F]) error {
	n := len(allowed)
	if len(targetIDs) != n {
		return fmt.Errorf("%d allowed sets for %d targets", n, len(targetIDs))
	}
	if vocab < 1 || len(dense) != n*vocab {
		return fmt.Errorf("dense logits: %d values for %d positions of vocabulary %d", len(dense), n, vocab)
	}
	b.Logits, b.Offsets, b.Targets = b.Logits[:0], append(b.Offsets[:0], 0), b.Targets[:0]
	for i, ids := range allowed {
		row := dense[i*vocab : (i+1)*vocab]
		target := -1
		for j, id := range ids {
			if int(id) < 0 || int(id) >= vocab {
				return fmt.Errorf("position %d: allowed token %d out of range [0,%d)", i, int(id), vocab)
			}
			if id == targetIDs[i] {
				target = j
			}
			b.Logits = append(b.Logits, row[id])
		}
		if target < 0 {
			return fmt.Errorf("position %d: target token %d is not among its %d allowed tokens", i, int(targetIDs[i]), len(ids))
		}
		b.Offsets = append(b.Offsets, len(b.Logits))
		b.Targets = append(b.Targets, target)
	}
	return nil
}

// ScatterAllowed writes the gradient of GatherAllowed's slices back into dense
// [positions, vocab] form: zero everywhere except at the allowed tokens.
func ScatterAllowed[F Float, T TokenID](grad []F, allowed [][]T, vocab int, dense []F) error {
	if len(dense) != len(allowed)*vocab {
		return fmt.Errorf("dense gradient: %d values for %d positions of vocabulary %d", len(dense), len(allowed), vocab)
	}
	clear(dense)
	k := 0
	for i, ids := range allowed {
		row := dense[i*vocab : (i+1)*vocab]
		for _, id := range ids {
			if k >= len(grad) {
				return fmt.Errorf("gradient has %d values, fewer than the allowed tokens", len(grad))
			}
			row[id] = grad[k]
			k++
		}
	}
	if k != len(grad) {
		return fmt.Errorf("gradient has %d values for %d allowed tokens", len(grad), k)
	}
	return nil
}
