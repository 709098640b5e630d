package tokenize

// Example is one tokenised training example, built as the official training script does.
type Example struct {
	// IDs is BOS + the training prompt with the output `"TARGET"` + EOS, truncated to maxLen
	// (EOS is only appended when the truncated ids are shorter than maxLen).
	IDs []int
	// Labels is IDs with IgnoreLabel over the prompt part: the length of the tokenised prompt
	// with an empty output (BOS included).
	Labels []int
	// ResponseStart is the index in IDs just after the last occurrence of the separator ids
	// [14711 6075 512] (the official code's response_idx_end), -1 if there is none.
	// IDs[ResponseStart:] are the title's tokens and EOS, the positions the trie constrains.
	ResponseStart int
}

// TrainExample tokenises one training example. maxLen <= 0 means no truncation (the official
// cutoff is 512).
func (t *Tokenizer) TrainExample(p Prompt, history []string, target string, maxLen int) Example {
	var w bpeWork
	ids := t.appendEncode(append([]int(nil), t.bosTemplate...), p.Train(history, target), &w)
	user := len(t.appendEncode(append([]int(nil), t.bosTemplate...), p.TrainPrefix(history), &w))
	if maxLen > 0 {
		ids = ids[:min(len(ids), maxLen)]
		user = min(user, maxLen)
	}
	if (len(ids) == 0 || ids[len(ids)-1] != t.eos) && (maxLen <= 0 || len(ids) < maxLen) {
		ids = append(ids, t.eos)
	}
	labels := make([]int, len(ids))
	for i := range labels {
		if i < user {
			labels[i] = IgnoreLabel
		} else {
			labels[i] = ids[i]
		}
	}
	return Example{IDs: ids, Labels: labels, ResponseStart: ResponseStart(ids)}
}

// InferenceIDs is BOS + the inference prompt (ending with the separator).
func (t *Tokenizer) InferenceIDs(p Prompt, history []string) []int {
	return t.EncodeSpecial(p.Inference(history))
}

// ResponseStart returns the index just after the last occurrence of the separator ids
// [14711 6075 512] in ids, or -1.
func ResponseStart(ids []int) int {
	n := len(separatorIDs)
	for i := len(ids) - n; i >= 0; i-- {
		if ids[i] == separatorIDs[0] && ids[i+1] == separatorIDs[1] && ids[i+2] == separatorIDs[2] {
			return i + n
		}
	}
	return -1
}
