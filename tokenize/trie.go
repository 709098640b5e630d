package tokenize

import (
	"fmt"
	"math"
	"slices"
)

// Trie is a prefix tree over item token sequences (each ending with EOS). Nodes are numbered,
// the root is 0, and every node keeps its children's tokens sorted, so the allowed next tokens
// of a node are a ready slice (no allocation, the large first level included) and a step is a
// binary search. A Trie is read-only once built and safe for concurrent use.
//
// The nodes live in flat arrays (compressed sparse rows): node n's children are the edges
// first[n]:first[n+1] of tokens and child, its items itemIDs[itemAt[n]:itemAt[n+1]]. That is
// about 20 bytes per node with no allocation per node, where a node of slices and a map while
// building cost hundreds (a million synthetic titles took 12.8 GiB).
type Trie struct {
	first   []int32 // [nodes+1] offsets into tokens and child
	tokens  []int   // child tokens, sorted within each node
	child   []int32 // node index of each child
	itemAt  []int32 // [nodes+1] offsets into itemIDs
	itemIDs []int   // item ids whose sequence ends at each node, sorted within each node
	eos     int
	eosOnly []int
	size    int // number of sequences inserted
}

// NewTrie builds a trie from token sequences and the item ids of each sequence (several ids
// when titles are duplicated). eos is returned by Allowed where nothing else is allowed.
//
// The sequences are visited in lexicographic order, so each one shares the longest common
// prefix with the one before it, and the nodes are numbered in depth-first order with every
// node's children created in token order: the flat arrays are filled by counting, with no map.
func NewTrie(seqs [][]int, items [][]int, eos int) (*Trie, error) {
	if len(seqs) != len(items) {
		return nil, fmt.Errorf("trie: %d sequences but %d item lists", len(seqs), len(items))
	}
	if len(seqs) > math.MaxInt32/2 {
		return nil, fmt.Errorf("trie: %d sequences: too many", len(seqs))
	}
	order := make([]int32, len(seqs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return slices.Compare(seqs[a], seqs[b]) })
	// Two walks over the sorted sequences number the nodes alike: the first counts every node's
	// children, the second writes each child at its place, so no per-node temporary is kept.
	end := make([]int32, len(seqs)) // the node each sequence ends on
	walk := func(add func(parent int32, tok int, node int32)) (nodes int32, err error) {
		nodes = 1
		path := []int32{0} // nodes along the previous sequence
		var prev []int
		for _, i := range order {
			seq := seqs[i]
			common := 0
			for common < len(prev) && common < len(seq) && prev[common] == seq[common] {
				common++
			}
			path = path[:common+1]
			for _, tok := range seq[common:] {
				if nodes == math.MaxInt32 {
					return 0, fmt.Errorf("trie: more than %d nodes", math.MaxInt32)
				}
				add(path[len(path)-1], tok, nodes)
				path = append(path, nodes)
				nodes++
			}
			end[i] = path[len(path)-1]
			prev = seq
		}
		return nodes, nil
	}
	first := []int32{0, 0} // children counts, shifted by one, then offsets
	nodes, err := walk(func(parent int32, _ int, _ int32) {
		first = append(first, 0)
		first[parent+1]++
	})
	if err != nil {
		return nil, err
	}
	n := int(nodes)
	t := &Trie{first: slices.Clip(first), tokens: make([]int, n-1), child: make([]int32, n-1),
		itemAt: make([]int32, n+1), eos: eos, eosOnly: []int{eos}, size: len(seqs)}
	for i := range n {
		t.first[i+1] += t.first[i]
	}
	fill := slices.Clone(t.first[:n])
	walk(func(parent int32, tok int, node int32) { // children come in token order
		t.tokens[fill[parent]], t.child[fill[parent]] = tok, node
		fill[parent]++
	})
	for i, it := range items {
		t.itemAt[end[i]+1] += int32(len(it))
	}
	for i := range n {
		t.itemAt[i+1] += t.itemAt[i]
	}
	t.itemIDs = make([]int, t.itemAt[n])
	copy(fill, t.itemAt[:n])
	for i, it := range items {
		copy(t.itemIDs[fill[end[i]]:], it)
		fill[end[i]] += int32(len(it))
	}
	for i := range n {
		slices.Sort(t.itemIDs[t.itemAt[i]:t.itemAt[i+1]])
	}
	return t, nil
}

// Root is the node of the empty prefix.
func (t *Trie) Root() int { return 0 }

// Len is the number of nodes.
func (t *Trie) Len() int { return len(t.first) - 1 }

// EOS is the token returned where no other token is allowed.
func (t *Trie) EOS() int { return t.eos }

// Next steps from node along token; ok is false if token is not allowed there.
func (t *Trie) Next(node, token int) (next int, ok bool) {
	lo, hi := t.first[node], t.first[node+1]
	i, found := slices.BinarySearch(t.tokens[lo:hi], token)
	if !found {
		return -1, false
	}
	return int(t.child[int(lo)+i]), true
}

// Children returns the sorted tokens allowed after node (empty at a leaf). The slice belongs
// to the trie: do not modify it.
func (t *Trie) Children(node int) []int {
	lo, hi := t.first[node], t.first[node+1]
	return t.tokens[lo:hi:hi]
}

// ItemsAt returns the item ids whose sequence ends at node (the node after EOS).
func (t *Trie) ItemsAt(node int) []int {
	lo, hi := t.itemAt[node], t.itemAt[node+1]
	return t.itemIDs[lo:hi:hi]
}

// Walk follows prefix from the root; ok is false if the prefix leaves the trie.
func (t *Trie) Walk(prefix []int) (node int, ok bool) {
	node = 0
	for _, tok := range prefix {
		if node, ok = t.Next(node, tok); !ok {
			return -1, false
		}
	}
	return node, true
}

// Allowed returns the sorted tokens allowed after a prefix of response tokens; where none is
// (a complete sequence, or a prefix outside the trie) it returns [EOS], as the official code
// does. The slice belongs to the trie: do not modify it.
func (t *Trie) Allowed(prefix []int) []int {
	node, ok := t.Walk(prefix)
	if !ok || len(t.Children(node)) == 0 {
		return t.eosOnly
	}
	return t.Children(node)
}

// AllowedAlong returns, for each position i of seq, the tokens allowed after seq[:i]: the
// constraint of every supervised position of a training example (the official code's
// trie.valid_tokens(title_tokens)[:-1]). Positions after seq leaves the trie get [EOS].
func (t *Trie) AllowedAlong(seq []int) [][]int {
	out := make([][]int, len(seq))
	node, ok := 0, true
	for i, tok := range seq {
		if ok && len(t.Children(node)) > 0 {
			out[i] = t.Children(node)
		} else {
			out[i] = t.eosOnly
		}
		if ok {
			node, ok = t.Next(node, tok)
		}
	}
	return out
}

// Items returns the item ids of a complete sequence, given with or without its final EOS
// (nil if seq is not a complete sequence). Duplicate titles give several ids.
func (t *Trie) Items(seq []int) []int {
	node, ok := t.Walk(seq)
	if !ok {
		return nil
	}
	if items := t.ItemsAt(node); len(items) > 0 {
		return items
	}
	if n, ok := t.Next(node, t.eos); ok {
		return t.ItemsAt(n)
	}
	return nil
}

// MaxToken is the largest token id of the trie (EOS included).
func (t *Trie) MaxToken() int {
	m := t.eos
	for _, tok := range t.tokens {
		m = max(m, tok)
	}
	return m
}
