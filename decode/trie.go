package decode

// Trie is the constraint: a prefix tree over item token sequences, each ending with EOS.
// *tokenize.Trie satisfies it (runtime/evaluate asserts `var _ decode.Trie = (*tokenize.Trie)(nil)`).
// Node ids identify prefixes: two beams on the same node carry the same tokens.
//
// (In the official trie the sequences carry no EOS and EOS is allowed only where nothing else
// is, so a title that is a token-prefix of another cannot be generated there; which titles are
// reachable is a property of the trie handed in, i.e. of package tokenize, not of decode.)
type Trie interface {
	// Root is the node of the empty prefix (the first generated token is chosen there).
	Root() int
	// Next steps from node along token; ok is false if token is not allowed there.
	Next(node, token int) (next int, ok bool)
	// Children returns the sorted tokens allowed after node; where a title ends, EOS is among
	// them. Empty after EOS. The slice is only read.
	Children(node int) []int
	// ItemsAt returns the item ids whose sequence ends at node (the node after EOS); several
	// ids where titles are duplicated. The slice is only read.
	ItemsAt(node int) []int
	// EOS is the end-of-sequence token.
	EOS() int
	// Len is the number of nodes; nodes are numbered 0 to Len()-1.
	Len() int
}

// allowed returns the candidate tokens of node: its children, or [EOS] where it has none (the
// official prefix_allowed_tokens_fn returns [EOS] where the trie allows nothing).
func allowed(t Trie, node int, eosOnly []int) []int {
	if c := t.Children(node); len(c) > 0 {
		return c
	}
	return eosOnly
}

// endNode is the node a hypothesis ends on after choosing EOS at node: the child along EOS,
// or node itself where the trie has no EOS edge there (a sequence stored without EOS).
func endNode(t Trie, node int) int {
	if n, ok := t.Next(node, t.EOS()); ok {
		return n
	}
	return node
}

// Index holds what decode derives once from a trie for tracing and the exact search: the
// token path of every item and, for every node, the fewest and the most tokens (EOS included)
// from it to the end of a sequence. Build it once per catalogue; it is read-only afterwards.
type Index struct {
	Trie  Trie
	paths map[int][]int // item id -> tokens incl. EOS
	ends  [][2]int32    // by node: {min, max} remaining tokens incl. EOS (0,0 at an end node)
	depth int           // longest sequence, tokens incl. EOS
	seqs  int           // nodes where items end: the distinct sequences
}

// NewIndex walks the whole trie (depth first) once.
func NewIndex(t Trie) *Index {
	ix := &Index{Trie: t, paths: map[int][]int{}, ends: make([][2]int32, t.Len())}
	eos := t.EOS()
	var path []int
	var walk func(node int, afterEOS bool) [2]int32
	walk = func(node int, afterEOS bool) [2]int32 {
		if len(t.ItemsAt(node)) > 0 {
			ix.seqs++
		}
		for _, it := range t.ItemsAt(node) {
			if _, dup := ix.paths[it]; !dup {
				p := append([]int(nil), path...)
				if !afterEOS {
					p = append(p, eos) // sequence stored without EOS: the search appends it
				}
				ix.paths[it] = p
			}
		}
		ch := t.Children(node)
		var r [2]int32
		if len(ch) == 0 {
			if !afterEOS {
				r = [2]int32{1, 1} // only EOS is allowed here
			}
		} else {
			r = [2]int32{1 << 30, 0}
			for _, tok := range ch {
				n, ok := t.Next(node, tok)
				if !ok {
					continue
				}
				path = append(path, tok)
				c := walk(n, tok == eos)
				path = path[:len(path)-1]
				if c[0]+1 < r[0] {
					r[0] = c[0] + 1
				}
				if c[1]+1 > r[1] {
					r[1] = c[1] + 1
				}
			}
		}
		ix.ends[node] = r
		return r
	}
	r := walk(t.Root(), false)
	ix.depth = int(r[1])
	return ix
}

// Path returns the tokens (EOS included) of an item, ok false if the item is not in the trie.
func (ix *Index) Path(item int) ([]int, bool) {
	p, ok := ix.paths[item]
	return p, ok
}

// Depth is the length in tokens (EOS included) of the longest sequence: no search runs longer.
func (ix *Index) Depth() int { return ix.depth }

// Sequences is the number of distinct item sequences (end nodes) in the trie: items with the
// same title share one. No search can return more distinct hypotheses that end on an item.
func (ix *Index) Sequences() int { return ix.seqs }

// remaining returns the fewest and the most tokens (EOS included) from node to a sequence end.
func (ix *Index) remaining(node int) (lo, hi int) {
	r := ix.ends[node]
	return int(r[0]), int(r[1])
}
