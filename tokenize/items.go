package tokenize

import (
	"fmt"
	"slices"
)

// separatorIDs is the Llama-3 tokenisation of ResponseSeparator: "###", " Response", ":\n".
var separatorIDs = []int{14711, 6075, 512}

// ItemSet holds the catalogue's distinct titles, their token sequences and the item tries.
//
// A title's sequence is the official in-context one: the ids of `### Response:\n"TITLE"`
// without the separator's ids, followed by EOS, so that the boundary merges exactly as in a
// prompt. The standalone tokenisation of `"TITLE"` is kept too (the official training script
// builds its trie from it); InContextDiffs lists the titles where the two differ.
type ItemSet struct {
	tok        *Tokenizer
	titles     []string
	items      [][]int // item ids of each distinct title, increasing
	inContext  [][]int // without EOS (EOS follows in the backing array)
	standalone [][]int // without EOS (the in-context slice itself where the two are equal)
	byTitle    map[string]int
	trie       *Trie
	stdTrie    *Trie
}

// NewItemSet tokenises every title of the catalogue and builds the tries.
func NewItemSet(tok *Tokenizer, cat *Catalogue) (*ItemSet, error) {
	if tok.EOS() < 0 {
		return nil, fmt.Errorf("item set: the tokenizer has no %s", EOSToken)
	}
	s := &ItemSet{tok: tok, byTitle: map[string]int{}}
	for _, id := range cat.IDs {
		title := cat.Titles[id]
		i, ok := s.byTitle[title]
		if !ok {
			i = len(s.titles)
			s.byTitle[title] = i
			s.titles = append(s.titles, title)
			s.items = append(s.items, nil)
		}
		s.items[i] = append(s.items[i], id)
	}
	sep := tok.Encode(ResponseSeparator)
	var w bpeWork
	same := true // every title tokenises alike in context and standalone (our data): one trie
	for _, title := range s.titles {
		q := Quote(title)
		full := tok.appendEncode(nil, ResponseSeparator+q, &w)
		if !slices.Equal(full[:min(len(sep), len(full))], sep) {
			return nil, fmt.Errorf("item set: %q does not start with the separator's ids %v: %v", ResponseSeparator+q, sep, full)
		}
		// Each sequence is stored once, with its EOS after it (the slices kept stop before it).
		in := append(make([]int, 0, len(full)-len(sep)+1), full[len(sep):]...)
		in = append(in, tok.EOS())
		std := tok.appendEncode(nil, q, &w)
		if slices.Equal(std, in[:len(in)-1]) {
			std = in
		} else {
			std, same = append(std, tok.EOS()), false
		}
		s.inContext = append(s.inContext, slices.Clip(in))
		s.standalone = append(s.standalone, slices.Clip(std))
	}
	var err error
	if s.trie, err = NewTrie(s.inContext, s.items, tok.EOS()); err != nil {
		return nil, err
	}
	s.stdTrie = s.trie
	if !same {
		if s.stdTrie, err = NewTrie(s.standalone, s.items, tok.EOS()); err != nil {
			return nil, err
		}
	}
	for i := range s.inContext { // without EOS, and capped so that an append cannot overwrite it
		n, m := len(s.inContext[i])-1, len(s.standalone[i])-1
		s.inContext[i], s.standalone[i] = s.inContext[i][:n:n], s.standalone[i][:m:m]
	}
	return s, nil
}

// Trie is the trie of the in-context sequences (+ EOS), used by the beam search. Training uses
// StandaloneTrie, as the official training script does (identical on our data).
func (s *ItemSet) Trie() *Trie { return s.trie }

// StandaloneTrie is the trie of the standalone sequences `"TITLE"` + EOS.
func (s *ItemSet) StandaloneTrie() *Trie { return s.stdTrie }

// Titles returns the distinct titles, in the order of their first item id.
func (s *ItemSet) Titles() []string { return s.titles }

// Items returns the item ids of a title (several for duplicated titles), nil if unknown.
func (s *ItemSet) Items(title string) []int {
	if i, ok := s.byTitle[title]; ok {
		return s.items[i]
	}
	return nil
}

// Sequence returns the in-context token ids of a title followed by EOS (nil if unknown).
func (s *ItemSet) Sequence(title string) []int {
	i, ok := s.byTitle[title]
	if !ok {
		return nil
	}
	return append(slices.Clone(s.inContext[i]), s.tok.EOS())
}

// TitleDiff is a title whose in-context and standalone token ids differ.
type TitleDiff struct {
	Title                 string
	InContext, Standalone []int
}

// InContextDiffs lists the titles whose in-context ids differ from their standalone ids.
func (s *ItemSet) InContextDiffs() []TitleDiff {
	var out []TitleDiff
	for i, t := range s.titles {
		if !slices.Equal(s.inContext[i], s.standalone[i]) {
			out = append(out, TitleDiff{Title: t, InContext: s.inContext[i], Standalone: s.standalone[i]})
		}
	}
	return out
}
