package tokenize_test

import (
	"fmt"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/tokenize"
)

// Load the Llama-3.2 tokenizer, encode a title as the official code quotes it, and decode
// the ids back.
func ExampleLoad() {
	tok, err := tokenize.Load(testdeps.TokenizerPath())
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := tok.Encode(tokenize.Quote("Carcassonne Basic Game"))
	fmt.Println(ids)
	text, err := tok.Decode(ids)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(text)
	fmt.Println(tok.EncodeSpecial("Carcassonne")[0] == tok.BOS())
	// Output:
	// [47416 8362 395 30052 14967 4140 1]
	// "Carcassonne Basic Game"
	// true
}

// A trie over two items' token sequences (each ending with EOS): the tokens allowed after a
// prefix, and the items a complete path ends at.
func ExampleTrie_Allowed() {
	const eos = 128001
	trie, err := tokenize.NewTrie([][]int{{10, 20, eos}, {10, 30, eos}}, [][]int{{1}, {2, 3}}, eos)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(trie.Allowed(nil))
	fmt.Println(trie.Allowed([]int{10}))
	fmt.Println(trie.Allowed([]int{10, 30}))
	fmt.Println(trie.Allowed([]int{99})) // outside the trie
	fmt.Println(trie.Items([]int{10, 30, eos}))
	// Output:
	// [10]
	// [20 30]
	// [128001]
	// [128001]
	// [2 3]
}
