package tokenize

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// mapTrie is the plain construction the flat one must equal: a map of children per node.
type mapTrie struct {
	next  []map[int]int
	items [][]int
}

func newMapTrie(seqs, items [][]int) *mapTrie {
	m := &mapTrie{next: []map[int]int{{}}, items: [][]int{nil}}
	for i, seq := range seqs {
		n := 0
		for _, tok := range seq {
			c, ok := m.next[n][tok]
			if !ok {
				c = len(m.next)
				m.next = append(m.next, map[int]int{})
				m.items = append(m.items, nil)
				m.next[n][tok] = c
			}
			n = c
		}
		m.items[n] = append(m.items[n], items[i]...)
	}
	return m
}

// TestTrieMatchesMapTrie: on random sequences (duplicates, prefixes of one another, empty
// ones, shared long prefixes) the flat trie has the map trie's nodes, children in order and
// items, reached along the same tokens.
func TestTrieMatchesMapTrie(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var seqs, items [][]int
		for i := range rng.IntN(200) {
			var seq []int
			switch {
			case i > 0 && rng.IntN(5) == 0: // a copy or a prefix of an earlier sequence
				prev := seqs[rng.IntN(len(seqs))]
				seq = slices.Clone(prev[:rng.IntN(len(prev)+1)])
			default:
				for range rng.IntN(8) {
					seq = append(seq, rng.IntN(6))
				}
			}
			seqs = append(seqs, seq)
			items = append(items, []int{100 + i, 1000 + rng.IntN(5)})
		}
		tr, err := NewTrie(seqs, items, 99)
		if err != nil {
			t.Fatal(err)
		}
		ref := newMapTrie(seqs, items)
		if tr.Len() != len(ref.next) {
			t.Fatalf("round %d: %d nodes, the map trie %d", round, tr.Len(), len(ref.next))
		}
		var walk func(n, r int)
		walk = func(n, r int) {
			want := slices.Sorted(func(yield func(int) bool) {
				for tok := range ref.next[r] {
					if !yield(tok) {
						return
					}
				}
			})
			if got := tr.Children(n); !slices.Equal(got, want) {
				t.Fatalf("round %d: children %v, want %v", round, got, want)
			}
			wantItems := slices.Sorted(slices.Values(ref.items[r]))
			if got := tr.ItemsAt(n); !slices.Equal(got, wantItems) {
				t.Fatalf("round %d: items %v, want %v", round, got, wantItems)
			}
			for _, tok := range want {
				c, ok := tr.Next(n, tok)
				if !ok {
					t.Fatalf("round %d: no child along %d", round, tok)
				}
				walk(c, ref.next[r][tok])
			}
			if _, ok := tr.Next(n, 7); ok {
				t.Fatalf("round %d: a child along a token no sequence has", round)
			}
		}
		walk(tr.Root(), 0)
	}
}
