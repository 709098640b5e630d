package tokenize

import "math"

// bpeWork holds the scratch buffers of one encoding call.
type bpeWork struct {
	// The short-word path.
	ids   []int   // current symbols' ids
	ranks []int32 // rank of the merge of symbol i with symbol i+1 (noMerge if none)
	nids  []int32 // merged id of that pair
	// The long-word path.
	syms  []bpeSymbol
	queue mergeQueue
}

const noMerge = math.MaxInt32

// shortWord is the longest pre-token merged by rescanning the pairs after every merge
// (quadratic, but without a queue's overhead); longer ones go through a priority queue. Both
// merge in the same order (TestMergeShortLong), so the threshold only affects speed: 64 bytes
// covers nearly every word of real text (titles, prompts) and bounds the rescans at 64×64.
const shortWord = 64

// appendPiece appends the ids of one pre-token (raw bytes) to dst with Hugging Face's BPE:
//
//   - ignore_merges: a pre-token that is a vocabulary token is one id, whatever the merges say;
//   - otherwise every byte starts as its own symbol and the adjacent pair with the lowest merge
//     rank is merged until none is left; pairs of equal rank (the same pair at several places)
//     merge leftmost first. This is the order of HF's priority queue of (rank, position): a stale
//     queue entry can never match a changed pair (the pair at a position only ever grows to the
//     right, so its merged token differs), so the queue always yields the current minimum.
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
	if len(piece) <= shortWord {
		return t.mergeShort(dst, piece, w)
	}
	return t.mergeLong(dst, piece, w)
}

// mergeShort merges by finding the lowest-rank pair anew after every merge: O(n²) in the
// pre-token's length, the fastest way for short words.
func (t *Tokenizer) mergeShort(dst []int, piece string, w *bpeWork) []int {
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

// bpeSymbol is one symbol of the long-word path: a doubly linked list over the pre-token's
// byte positions, where a merge folds the right symbol into the left one (id -1: merged away).
type bpeSymbol struct {
	id, prev, next int32
}

// mergeLong merges as Hugging Face's Word::merge_all does: a min-queue of candidate merges
// ordered by (rank, position of the left symbol), entries checked on the way out against the
// current pair (a stale one is dropped; HF compares the merged ids, we the ranks, which is
// the same test since a rank is one merge). Every merge pushes at most two entries, so a
// pre-token of n bytes costs O(n log n) whatever its content.
func (t *Tokenizer) mergeLong(dst []int, piece string, w *bpeWork) []int {
	n := len(piece)
	syms := w.syms[:0]
	for i := 0; i < n; i++ {
		syms = append(syms, bpeSymbol{id: int32(t.byteID[piece[i]]), prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[n-1].next = -1
	q := w.queue[:0]
	for i := 0; i+1 < n; i++ {
		if r, _ := t.pairRank(int(syms[i].id), int(syms[i+1].id)); r != noMerge {
			q = append(q, newMergeKey(r, int32(i)))
		}
	}
	q.init()
	for len(q) > 0 {
		top := q.pop()
		pos := top.pos()
		s := &syms[pos]
		if s.id < 0 || s.next < 0 {
			continue
		}
		right := &syms[s.next]
		r, id := t.pairRank(int(s.id), int(right.id))
		if r != top.rank() {
			continue // stale: the pair at this position has changed since it was queued
		}
		s.id, s.next, right.id = id, right.next, -1
		if s.next >= 0 {
			syms[s.next].prev = pos
		}
		if s.prev >= 0 {
			if r, _ := t.pairRank(int(syms[s.prev].id), int(s.id)); r != noMerge {
				q.push(newMergeKey(r, s.prev))
			}
		}
		if s.next >= 0 {
			if r, _ := t.pairRank(int(s.id), int(syms[s.next].id)); r != noMerge {
				q.push(newMergeKey(r, pos))
			}
		}
	}
	// The first symbol is never merged away (merges fold the right symbol into the left).
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, int(syms[i].id))
	}
	w.syms, w.queue = syms, q
	return dst
}

func (t *Tokenizer) pairRank(a, b int) (int32, int32) {
	if m, ok := t.merges[pairKey(a, b)]; ok {
		return m.rank, m.id
	}
	return noMerge, 0
}

// mergeKey orders the queued merges of mergeLong: rank in the high 32 bits, the left symbol's
// position in the low ones, so that one integer comparison gives HF's (rank, position) order.
// The merged id is not stored: it is looked up again when the entry is popped, and a rank
// identifies its merge (one line of the merges list), so comparing ranks detects stale entries.
type mergeKey uint64

func newMergeKey(rank, pos int32) mergeKey { return mergeKey(uint64(rank)<<32 | uint64(uint32(pos))) }

func (k mergeKey) rank() int32 { return int32(k >> 32) }
func (k mergeKey) pos() int32  { return int32(uint32(k)) }

// mergeQueue is a 4-ary min-heap of merge keys, written out rather than container/heap (no
// interface calls in the inner loop; four children per node halve the depth and the cache
// misses of a million-entry queue).
type mergeQueue []mergeKey

const queueArity = 4

func (q mergeQueue) init() {
	if len(q) < 2 {
		return
	}
	for i := (len(q) - 2) / queueArity; i >= 0; i-- {
		q.down(i)
	}
}

func (q *mergeQueue) push(k mergeKey) {
	*q = append(*q, k)
	h := *q
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / queueArity
		if h[parent] <= k {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = k
}

func (q *mergeQueue) pop() mergeKey {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	*q = h[:last]
	if last > 0 {
		q.down(0)
	}
	return top
}

func (q mergeQueue) down(i int) {
	k := q[i]
	n := len(q)
	for {
		first := queueArity*i + 1
		if first >= n {
			break
		}
		m := first
		if first+queueArity <= n { // all four children: unrolled, branch-light
			c := q[first : first+queueArity : first+queueArity]
			a, b := 0, 2
			if c[1] < c[0] {
				a = 1
			}
			if c[3] < c[2] {
				b = 3
			}
			if c[b] < c[a] {
				a = b
			}
			m += a
		} else {
			for c := first + 1; c < n; c++ {
				if q[c] < q[m] {
					m = c
				}
			}
		}
		if q[m] >= k {
			break
		}
		q[i] = q[m]
		i = m
	}
	q[i] = k
}
