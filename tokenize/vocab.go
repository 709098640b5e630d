package tokenize

import (
	"fmt"
	"iter"
)

// VocabError reports a token id that the tokenizer produces for a run's data and that the
// model's vocabulary lacks: the tokenizer does not belong to the model. Found before any graph
// runs, it replaces ONNX Runtime's Gather error halfway through the run.
type VocabError struct {
	Tokenizer string // tokenizer.json
	ID        int    // the largest id found
	Where     string // what produced it, e.g. "the item titles"
	Vocab     int    // the model's vocab_size
}

func (e *VocabError) Error() string {
	return fmt.Sprintf("the tokenizer %s gives token id %d for %s, outside the model's vocabulary of %d tokens (vocab_size in config.json): "+
		"it is not this model's tokenizer", e.Tokenizer, e.ID, e.Where, e.Vocab)
}

// CheckVocab returns a *VocabError when an id of the item trie (EOS included), BOS, or an id
// of one of seqs is outside [0, vocab). tokPath names the tokenizer, what the sequences.
func CheckVocab(tokPath string, tok *Tokenizer, trie *Trie, seqs iter.Seq[[]int], what string, vocab int) error {
	if m := max(trie.MaxToken(), tok.BOS()); m >= vocab {
		return &VocabError{Tokenizer: tokPath, ID: m, Where: "the item titles and the special tokens", Vocab: vocab}
	}
	worst := -1
	for s := range seqs {
		for _, id := range s {
			worst = max(worst, id)
		}
	}
	if worst >= vocab {
		return &VocabError{Tokenizer: tokPath, ID: worst, Where: what, Vocab: vocab}
	}
	return nil
}
