package main

import (
	"fmt"
	"strings"
)

// trickyStrings returns the hand-picked strings of the reference comparison: white-space runs,
// digits, HTML entities, contractions, accents, CJK, emoji, special-token text.
func trickyStrings() []string {
	s := []string{
		"", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\t", "\t\t", " \t ",
		"a", "A", " a", "a ", "a  ", "  a", "a  b", "a   b", "a    b", "a \n b", "a\n\nb", "a \n\n b",
		"a\t\tb", "a\t b", "a \tb", " \n ", "\n \n", "  \n  ", "x\u00a0y", "x\u00a0\u00a0y", "\u3000x\u3000\u3000y",
		"x\u2003\u2003 y", "end   ", "end \n", "end\n ", "line1\r\nline2\r\n", "\v\f x", "x\u0085y", "x\u2028y",
		"0", "1", "12", "123", "1234", "12345", "123456", "1234567", "3.14159265358979", "1,000,000",
		"2024-01-15", "v1.2.3", "0x1F600", "$19.99", "50%", "No. 1", "A1B2C3", "٣٤٥٦", "１２３４", "²³¼½",
		"Ⅻ Ⅳ", "item 12345678901234567890",
		"&amp;", "&quot;Hello&quot;", "Tom &amp; Jerry", "&lt;b&gt;bold&lt;/b&gt;", "&#39;quoted&#39;", "&nbsp;x", "&#x2F;",
		"don't", "DON'T", "Don'T", "I'm", "I'M", "you're", "YOU'RE", "we've", "WE'VE", "she'll", "SHE'LL", "he'd", "HE'D",
		"it's", "IT'S", "'s", "'S", "'re", "'ll", "'d", "'x", "''", "'''s", "rock'n'roll", "ma'am", "y'all", "'sup", "o'clock",
		"Children's Book", "Children'S", "it\u2019s", "it\u017fs '\u017f", "DON\u2019T",
		"café", "Café Crème", "naïve", "Ångström", "Ærøskøbing", "Zürich", "Ελληνικά", "Русский текст", "עברית", "العربية",
		"e\u0301", "cafe\u0301 ", "n\u0303o", "Ǆemal", "ﬁnance", "İstanbul", "straße STRASSE",
		"中文标题", "日本語のテキスト", "한국어 텍스트", "中文 English 混合", "（全角）", "「引用」",
		"😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "I ❤️ NY", "★★★★☆", "→ ← ↑", "♥", "©®™", "…", "—", "–-",
		"<|begin_of_text|>", "<|end_of_text|>", "<|begin_of_text|>Hello", "a<|end_of_text|>b",
		"<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "<|reserved_special_token_0|>",
		"<|reserved_special_token_247|>", "<|begin_of_text|><|begin_of_text|>", "<|begin_of_text", "<|unknown|>",
		"<pad>", " <|end_of_text|> ", "<|python_tag|>x",
		"### Response:\n", "### Response:\n\"Title\"", "### Response:\n \"Title\"", "\"\"", "\"Quoted \"inner\" title\"",
		"!!!", "???", "...", "?!?!", "--", "----------", "==========", "***", "###", "\"\"\"\"", "(((", "a,b,c", "a, b, c",
		"foo.bar", "foo_bar", "foo-bar", "foo/bar", "http://example.com/path?q=1&r=2", "user@example.com", "#hashtag", "@mention",
		"C++", "C#", "F#", ".NET", "node.js", "[1, 2, 3]", "{\"a\": 1}", "x=y+z", "<div class=\"x\">", "$$$", "%%",
		" .", " ..", "  .", " !x", "x .\n", ".\n\n", "!\r\n", " ?\n\n\n", "a.\n b",
		"HELLO WORLD", "hello world", "Hello World", "hELLO", "CamelCaseWord", "ALLCAPS123", "abc123def", "123abc", "a1",
		"x" + strings.Repeat(" ", 17) + "y", strings.Repeat("\n", 9) + "x", strings.Repeat("ab", 40), strings.Repeat("9", 40),
		strings.Repeat("=", 100), strings.Repeat("😀", 20), strings.Repeat(" ", 50), strings.Repeat("a ", 30),
		"Pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious", "aaaaaaaaaaaaaaaaaaaaaa",
		"Munchkin 8 Half Horse, Will Travel Card Game", "LEGO® Star Wars™ 75192", "Melissa & Doug 12\" x 18\" Easel",
		"Size: 3T-4T (US)", "Pack of 12 - Blue/Green", "\u200bzero\u200bwidth", "soft\u00adhyphen", "\ufeffBOM",
		"tab\tseparated\tvalues", "mixed \t\n whitespace \r\n end", "trailing spaces   \n", "\n\n### Input:\n",
	}
	// Combinations: white-space runs between words and punctuation.
	for _, ws := range []string{" ", "  ", "   ", "\n", " \n", "\n ", "\t", " \t", "\n\n "} {
		for _, pair := range [][2]string{{"word", "word"}, {"word", "."}, {".", "word"}, {"1", "2"}, {"é", "ß"}} {
			s = append(s, pair[0]+ws+pair[1])
		}
	}
	for n := 1; n <= 8; n++ {
		s = append(s, fmt.Sprintf("x%sy", strings.Repeat(" ", n)), strings.Repeat("1", n)+"a"+strings.Repeat("2", n))
	}
	return s
}

// randomStrings returns n strings of up to 24 pieces drawn from tricky fragments (seeded, so
// the corpus is reproducible): they exercise the pre-tokenizer's alternatives at random
// boundaries.
func randomStrings(n int) []string {
	pieces := []string{
		" ", " ", "  ", "\n", "\r\n", "\r", "\t", "\u00a0", "\u3000", "\u2003", "\v",
		"a", "Z", "word", "Word", "WORD", "é", "ß", "Ω", "中", "文字", "ک", "ー",
		"0", "7", "42", "1234", "٣", "½", "Ⅻ",
		"'", "'s", "'S", "'t", "'re", "'VE", "'m", "'ll", "'d", "'x", "\u2019", "\u017f",
		".", ",", "!", "?", "\"", "(", ")", "-", "_", "/", "&", "&amp;", "#", "###", ":", ";", "…", "—",
		"😀", "👍🏽", "❤️", "\u0301", "\u200b", "\u00ad",
		"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|", "|>", "<pad>",
		"### Response:\n",
	}
	rng := uint64(0x9E3779B97F4A7C15)
	next := func(k int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(k))
	}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := next(24) + 1; k > 0; k-- {
			b.WriteString(pieces[next(len(pieces))])
		}
		out[i] = b.String()
	}
	return out
}
