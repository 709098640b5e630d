package tokenize

import (
	"fmt"
	"slices"
	"sort"
)

// Trie is a prefix tree over item token sequences (each ending with EOS). Nodes are numbered,
// the root is 0, and every node keeps its children's tokens sorted, so the allowed next tokens
// of a node are a ready slice (no allocation, the large first level included) and a step is a
// binary search. A Trie is read-only once built and safe for concurrent use.
type Trie struct {
	nodes   []trieNode
	eos     int
	eosOnly []int
	size    int // number of sequences inserted
}

type trieNode struct {
	tokens []int   // sorted child tokens
	child  []int32 // node index of each child
	items  []int   // item ids whose sequence ends here
}

// NewTrie builds a trie from token sequences and the item ids of each sequence (several ids
// when titles are duplicated). eos is returned by Allowed where nothing else is allowed.
func NewTrie(seqs [][]int, items [][]int, eos int) (*Trie, error) {
	if len(seqs) != len(items) {
		return nil, fmt.Errorf("trie: %d sequences but %d item lists", len(seqs), len(items))
	}
	type buildNode struct {
		next  map[int]int32
		items []int
	}
	b := []buildNode{{next: map[int]int32{}}}
	for i, seq := range seqs {
		n := int32(0)
		for _, tok := range seq {
			c, ok := b[n].next[tok]
			if !ok {
				c = int32(len(b))
				b = append(b, buildNode{next: map[int]int32{}})
				b[n].next[tok] = c
			}
			n = c
		}
		b[n].items = append(b[n].items, items[i]...)
	}
	t := &Trie{nodes: make([]trieNode, len(b)), eos: eos, eosOnly: []int{eos}, size: len(seqs)}
	for i, bn := range b {
		nd := &t.nodes[i]
		nd.tokens = make([]int, 0, len(bn.next))
		for tok := range bn.next {
			nd.tokens = append(nd.tokens, tok)
		}
		sort.Ints(nd.tokens)
		nd.child = make([]int32, len(nd.tokens))
		for j, tok := range nd.tokens {
			nd.child[j] = bn.next[tok]
		}
		nd.items = bn.items
		slices.Sort(nd.items)
	}
	return t, nil
}

// Root is the node of the empty prefix.
func (t *Trie) Root() int { return 0 }

// Len is the number of nodes.
func (t *Trie) Len() int { return len(t.nodes) }

// EOS is the token returned where no other token is allowed.
func (t *Trie) EOS() int { return t.eos }

// Next steps from node along token; ok is false if token is not allowed there.
func (t *Trie) Next(node, token int) (next int, ok bool) {
	nd := &t.nodes[node]
	i, found := slices.BinarySearch(nd.tokens, token)
	if !found {
		return -1, false
	}
	return int(nd.child[i]), true
}

// Children returns the sorted tokens allowed after node (empty at a leaf). The slice belongs
// to the trie: do not modify it.
func (t *Trie) Children(node int) []int { return t.nodes[node].tokens }

// ItemsAt returns the item ids whose sequence ends at node (the node after EOS).
func (t *Trie) ItemsAt(node int) []int { return t.nodes[node].items }

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
	if !ok || len(t.nodes[node].tokens) == 0 {
		return t.eosOnly
	}
	return t.nodes[node].tokens
}

// AllowedAlong returns, for each position i of seq, the tokens allowed after seq[:i]: the
// constraint of every supervised position of a training example (the official code's
// trie.valid_tokens(title_tokens)[:-1]). Positions after seq leaves the trie get [EOS].
func (t *Trie) AllowedAlong(seq []int) [][]int {
	out := make([][]int, len(seq))
	node, ok := 0, true
	for i, tok := range seq {
		if ok && len(t.nodes[node].tokens) > 0 {
			out[i] = t.nodes[node].tokens
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
	if items := t.nodes[node].items; len(items) > 0 {
		return items
	}
	if n, ok := t.Next(node, t.eos); ok {
		return t.nodes[n].items
	}
	return nil
}

// MaxToken is the largest token id of the trie (EOS included).
func (t *Trie) MaxToken() int {
	m := t.eos
	for _, n := range t.nodes {
		if len(n.tokens) > 0 {
			m = max(m, n.tokens[len(n.tokens)-1])
		}
	}
	return m
}
