package tokenize

import (
	"errors"
	"fmt"
	"slices"
)

// The official training script (train_bear.py, train_msl.py; train_lml.py for the labels)
// answers "where does the supervised part of an example start?" twice:
//
//   - the labels: -100 over the first user_prompt_len ids, where user_prompt_len is the token
//     count of BOS + the training prompt with an empty output (tokenised on its own);
//   - the trie path: response_idx_end, the index just after the LAST occurrence of the
//     separator ids [14711 6075 512] in the example's ids; the ids from there on (the title's
//     tokens and EOS) are walked through the item trie, one allowed set per id.
//
// It then asserts that there are as many allowed sets as label positions, that is that both
// answers agree. Supervision holds both answers and Start is the one place that decides.
//
// The trie of that walk is built from the standalone tokenisation of every catalogue title,
// `"TITLE"` + EOS (ItemSet.StandaloneTrie), not from the in-context one the inference code
// uses (ItemSet.Trie); the path walked is the example's own, in-context, ids. On the four
// datasets the two tokenisations are identical (ItemSet.InContextDiffs is empty).

var (
	// errNoResponse: the example's ids hold no separator. The official script prints
	// "Response not found in input_ids" and keeps a None in its dataset, which fails in the
	// collator as soon as a batch contains it: training stops.
	errNoResponse = errors.New("no ### Response:\\n separator ids in the example")
	// ErrStartMismatch: the label start and the trie-path start differ (a target title that
	// itself contains "\n### Response:\n" moves the last separator into the title). The
	// official script's assert (constrain_mask rows == allowed sets) fails: training stops
	// before its first step.
	ErrStartMismatch = errors.New("the label start and the trie-path start disagree")
)

// Supervision is where the supervised part of a training example starts, by the official
// script's two rules.
type Supervision struct {
	// LabelStart is the number of leading ignoreLabel labels: the token count of BOS + the
	// training prompt with an empty output (the official user_prompt_len).
	LabelStart int
	// PathStart is the index just after the last occurrence of the separator ids (the official
	// response_idx_end), -1 if there is none: ids[PathStart:] is the path through the trie.
	PathStart int
}

// Start returns the first supervised position: LabelStart, when the trie path starts at the
// same position. Otherwise it returns errNoResponse or ErrStartMismatch (wrapped with both
// positions), where the official script stops.
func (s Supervision) Start() (int, error) {
	switch {
	case s.PathStart < 0:
		return -1, fmt.Errorf("%w (labels start at token %d)", errNoResponse, s.LabelStart)
	case s.PathStart != s.LabelStart:
		return -1, fmt.Errorf("%w: labels start at token %d (prompt token count), the trie path at token %d (after the last separator); the official script's assert fails here",
			ErrStartMismatch, s.LabelStart, s.PathStart)
	}
	return s.LabelStart, nil
}

// Example is one tokenised training example, built as the official training script does.
type Example struct {
	// IDs is BOS + the training prompt with the output `"TARGET"` + EOS. There is no
	// truncation: the official BEAR scripts pass no cutoff to the tokenizer.
	IDs []int
	Supervision
}

// Labels returns the official labels: ignoreLabel over the first LabelStart positions, the ids
// after them.
func (e Example) Labels() []int {
	labels := make([]int, len(e.IDs))
	for i, id := range e.IDs {
		if i < e.LabelStart {
			labels[i] = ignoreLabel
		} else {
			labels[i] = id
		}
	}
	return labels
}

// TrainExample tokenises one training example (see Example and Supervision).
func (t *Tokenizer) TrainExample(p Prompt, history []string, target string) Example {
	var w bpeWork
	return t.trainExample(p, history, target, &w)
}

// TrainExample is Tokenizer.TrainExample with the Encoder's scratch buffers.
func (e *Encoder) TrainExample(p Prompt, history []string, target string) Example {
	return e.t.trainExample(p, history, target, &e.w)
}

func (t *Tokenizer) trainExample(p Prompt, history []string, target string, w *bpeWork) Example {
	// The official script tokenises the prompt without output on its own, and its count, not a
	// search in the ids, sets the labels. The full text is that prompt + "TARGET", so where
	// the tokenizer cuts the full text at the prompt's end its ids are the prompt's followed by
	// the output's, and one encoding of each part serves both; elsewhere the full text is
	// encoded on its own.
	prefix, output := p.TrainPrefix(history), Quote(target)
	ids := t.appendEncode(append([]int(nil), t.bosTemplate...), prefix, w)
	labelStart := len(ids)
	if t.cutsAt(prefix, output) {
		ids = t.appendEncode(ids, output, w)
	} else {
		ids = t.appendEncode(append(ids[:0], t.bosTemplate...), prefix+output, w)
	}
	// The official tokenize() appends EOS unless the text already ends with it.
	if len(ids) == 0 || ids[len(ids)-1] != t.eos {
		ids = append(ids, t.eos)
	}
	return Example{IDs: slices.Clone(ids), Supervision: Supervision{LabelStart: labelStart, PathStart: responseStart(ids)}}
}

// cutsAt reports whether the ids of a+b are the ids of a followed by the ids of b. It is
// conservative: true is exact, false only sends the caller to the general path. It holds when
// b holds no added-token text, no added token of a+b crosses the join, and the pre-tokeniser
// splits the tail of a (after its last added token, from its last hard cut) the same way
// alone and inside a+b, ending a piece at the join; the pre-tokeniser looks only forward from
// a piece's start, so b is then split as it is alone.
func (t *Tokenizer) cutsAt(a, b string) bool {
	for i := 0; i < len(b); i++ {
		if t.firstByte[b[i]] {
			return false
		}
	}
	full := a + b
	for i := max(0, len(a)-t.maxSpecial+1); i < len(a); i++ {
		if t.firstByte[a[i]] && t.matchSpecial(full[i:]) > len(a)-i {
			return false
		}
	}
	for i := lastHardCut(a, t.plainTail(a)); i < len(a); {
		n := splitLlama3(a[i:])
		if splitLlama3(full[i:]) != n {
			return false
		}
		i += n
	}
	return true
}

// lastHardCut returns the last position q > from of s where s[q-1] is '\n' and s[q] is not
// white space, else from. No alternative of the Llama-3 pattern matches across a newline
// followed by a non-space (letters, numbers, contractions and other characters exclude the
// newline, and the white-space alternatives end before the non-space), so every text holding
// these two characters there is cut at q, and what comes before q is split the same way
// whatever follows: the two splits cutsAt compares need comparing from q on only.
func lastHardCut(s string, from int) int {
	for q := len(s) - 1; q > from; q-- {
		if s[q-1] == '\n' {
			if r, _ := decode(s, q); classOf(r) != kSpace {
				return q
			}
		}
	}
	return from
}

// plainTail is where the text after the last added token of s begins, as appendEncode finds
// the added tokens (leftmost, longest).
func (t *Tokenizer) plainTail(s string) int {
	start := 0
	for i := 0; i < len(s); i++ {
		if !t.firstByte[s[i]] {
			continue
		}
		if n := t.matchSpecial(s[i:]); n > 0 {
			i += n - 1
			start = i + 1
		}
	}
	return start
}

// InferenceIDs is BOS + the inference prompt (ending with the separator), as the official
// inference script's tokenizer(prompts, padding=True) gives it: the default
// add_special_tokens puts BOS in front, and its left padding is hidden by the attention mask.
func (t *Tokenizer) InferenceIDs(p Prompt, history []string) []int {
	return t.EncodeSpecial(p.Inference(history))
}

// responseStart returns the index just after the last occurrence of the separator ids
// [14711 6075 512] in ids, or -1.
func responseStart(ids []int) int {
	n := len(separatorIDs)
	for i := len(ids) - n; i >= 0; i-- {
		if ids[i] == separatorIDs[0] && ids[i+1] == separatorIDs[1] && ids[i+2] == separatorIDs[2] {
			return i + n
		}
	}
	return -1
}
