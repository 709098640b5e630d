package evaluate

import (
	"strings"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/tokenize"
)

// cleanupPairs are transformers' clean_up_tokenization replacements
// (tokenization_utils_base.py, PreTrainedTokenizerBase.clean_up_tokenization), in their order.
// Python applies them as a chain of str.replace calls, each over the previous one's output.
var cleanupPairs = [][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

// cleanUpTokenizationSpaces is transformers' clean_up_tokenization, which decode applies when
// clean_up_tokenization_spaces is true (the Llama-3.2 tokenizer_config.json sets it, so the
// official script's batch_decode cleaned every prediction).
func cleanUpTokenizationSpaces(s string) string {
	for _, p := range cleanupPairs {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}

// officialDecode is the string the official script stores for one hypothesis: its tokens
// decoded with skip_special_tokens (EOS and any other added token dropped), cleaned up by
// cleanUpTokenizationSpaces. The official script decodes prompt and response together and keeps
// the text after the last "Response:\n"; decoding the response alone gives the same text,
// because the prompt ends with the token ":\n" (byte-level decoding is a concatenation of the
// tokens' bytes, and no cleanup pattern contains a newline, so none spans the boundary).
func officialDecode(tok *tokenize.Tokenizer, tokens []int) (string, error) {
	ids := make([]int, 0, len(tokens))
	for _, id := range tokens {
		if !tok.IsSpecial(id) {
			ids = append(ids, id)
		}
	}
	s, err := tok.Decode(ids)
	if err != nil {
		return "", err
	}
	return decode.OfficialResponse(cleanUpTokenizationSpaces(s)), nil
}

// cleanupChangedTitles counts the distinct titles that the official string match can never
// hit: those whose quoted form, cleaned up, no longer gives the title back under the official
// [1:-1] cut.
func cleanupChangedTitles(titles []string) int {
	n := 0
	for _, t := range titles {
		if decode.OfficialTitle(cleanUpTokenizationSpaces(tokenize.Quote(t))) != t {
			n++
		}
	}
	return n
}
