package tokenize

import "math"

// bpeWork holds the scratch buffers of one encoding call.
type bpeWork struct {
	ids   []int   // current symbols' ids
	ranks []int32 // rank of the merge of symbol i with symbol i+1 (noMerge if none)
	nids  []int32 // merged id of that pair
}

const noMerge = math.MaxInt32

// appendPiece appends the ids of one pre-token (raw bytes) to dst with Hugging Face's BPE:
//
//   - ignore_merges: a pre-token that is a vocabulary token is one id, whatever the merges say;
//   - otherwise every byte starts as its own symbol and the adjacent pair with the lowest merge
//     rank is merged until none is left; pairs of equal rank (the same pair at several places)
//     merge leftmost first. This is what HF's priority queue of (rank, position) does: a stale
//     queue entry can never match a changed pair, so the queue always yields the current
//     minimum.
//
// The byte-level mapping (byte -> "Ġ"-style character) is never materialised: the vocabulary
// is keyed by raw bytes, which is equivalent because the mapping is a bijection on bytes.
func (t *Tokenizer) appendPiece(dst []int, piece string, w *bpeWork) []int {
	if len(piece) == 1 {
		return append(dst, t.byteID[piece[0]])
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[piece]; ok {
			return append(dst, id)
		}
	}
	n := len(piece)
	w.ids = w.ids[:0]
	w.ranks = w.ranks[:0]
	w.nids = w.nids[:0]
	for i := 0; i < n; i++ {
		w.ids = append(w.ids, t.byteID[piece[i]])
	}
	for i := 0; i+1 < n; i++ {
		r, id := t.pairRank(w.ids[i], w.ids[i+1])
		w.ranks = append(w.ranks, r)
		w.nids = append(w.nids, id)
	}
	ids, ranks, nids := w.ids, w.ranks, w.nids
	for len(ids) > 1 {
		best, bi := int32(noMerge), -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		ids[bi] = int(nids[bi])
		ids = append(ids[:bi+1], ids[bi+2:]...)
		ranks = append(ranks[:bi], ranks[bi+1:]...)
		nids = append(nids[:bi], nids[bi+1:]...)
		if bi > 0 {
			ranks[bi-1], nids[bi-1] = t.pairRank(ids[bi-1], ids[bi])
		}
		if bi < len(ranks) {
			ranks[bi], nids[bi] = t.pairRank(ids[bi], ids[bi+1])
		}
	}
	w.ids, w.ranks, w.nids = ids, ranks, nids
	return append(dst, ids...)
}

func (t *Tokenizer) pairRank(a, b int) (int32, int32) {
	if m, ok := t.merges[pairKey(a, b)]; ok {
		return m.rank, m.id
	}
	return noMerge, 0
}
