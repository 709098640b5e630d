package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// splitLlama3 returns the length in bytes of the first pre-token of s (len(s) > 0), as the
// Llama-3 Split pattern (llama3Pattern, behaviour Isolated) would match it with Oniguruma's
// leftmost-first alternation and backtracking:
//
//	1 (?i:'s|'t|'re|'ve|'m|'ll|'d)
//	2 [^\r\n\p{L}\p{N}]?\p{L}+
//	3 \p{N}{1,3}
//	4  ?[^\s\p{L}\p{N}]+[\r\n]*
//	5 \s*[\r\n]+
//	6 \s+(?!\S)
//	7 \s+
//
// Every character is matched by one alternative (letters 2, numbers 3, white space 5-7, the
// rest 4), so the pattern leaves no gaps and the pre-tokens are consecutive pieces of s.
// No regular expression is used: Go's regexp has no lookahead, and a hand-written matcher is
// much faster than either engine.
func splitLlama3(s string) int {
	c0, n0 := decode(s, 0)
	k0 := classOf(c0)

	// 1: contractions, case-insensitive.
	if c0 == '\'' && len(s) > 1 {
		if n := contraction(s[1:]); n > 0 {
			return 1 + n
		}
	}
	// 2: an optional non-letter, non-number, non-CR/LF character, then letters.
	if k0 == kLetter {
		return n0 + letters(s[n0:])
	}
	if k0 != kNumber && c0 != '\r' && c0 != '\n' && n0 < len(s) {
		if c1, _ := decode(s, n0); classOf(c1) == kLetter {
			return n0 + letters(s[n0:])
		}
	}
	// 3: one to three numbers.
	if k0 == kNumber {
		i := n0
		for k := 1; k < 3 && i < len(s); k++ {
			c, n := decode(s, i)
			if classOf(c) != kNumber {
				break
			}
			i += n
		}
		return i
	}
	// 4: an optional space, then other characters, then CR/LF.
	start := 0
	if c0 == ' ' && n0 < len(s) {
		if c1, _ := decode(s, n0); classOf(c1) == kOther {
			start = n0
		}
	}
	if start > 0 || k0 == kOther {
		i := start
		for i < len(s) {
			c, n := decode(s, i)
			if classOf(c) != kOther {
				break
			}
			i += n
		}
		for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
			i++
		}
		return i
	}
	// White space from here on (k0 == kSpace). Find the run and its last CR/LF.
	end, lastNL, last := 0, -1, 0
	for end < len(s) {
		c, n := decode(s, end)
		if classOf(c) != kSpace {
			break
		}
		if c == '\r' || c == '\n' {
			lastNL = end
		}
		last = end
		end += n
	}
	// 5: greedy white space backtracks to the last CR/LF of the run.
	if lastNL >= 0 {
		return lastNL + 1
	}
	// 6: white space not followed by a non-space: the whole run at the end of the text,
	// otherwise the run without its last character.
	if end == len(s) {
		return end
	}
	if last > 0 {
		return last
	}
	// 7: a single white-space character before a non-space.
	return end
}

const (
	kOther = iota
	kLetter
	kNumber
	kSpace
)

var asciiClass = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		r := rune(c)
		switch {
		case unicode.IsLetter(r):
			t[c] = kLetter
		case unicode.IsNumber(r):
			t[c] = kNumber
		case unicode.IsSpace(r):
			t[c] = kSpace
		default:
			t[c] = kOther
		}
	}
	return
}()

// classOf: \p{L} (unicode.IsLetter), \p{N} (unicode.IsNumber), \s (Unicode White_Space, which
// is unicode.IsSpace), or other. Invalid UTF-8 cannot occur (Go strings from text are decoded
// as U+FFFD, class other, which is what the Rust side sees after its own UTF-8 validation).
func classOf(r rune) uint8 {
	if r < 128 {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return kLetter
	case unicode.IsNumber(r):
		return kNumber
	case unicode.IsSpace(r):
		return kSpace
	}
	return kOther
}

func decode(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func letters(s string) int {
	i := 0
	for i < len(s) {
		c, n := decode(s, i)
		if classOf(c) != kLetter {
			break
		}
		i += n
	}
	return i
}

// contraction matches s|t|re|ve|m|ll|d case-insensitively (Unicode simple case folding: only
// ASCII letters and U+017F fold to these) at the start of s.
func contraction(s string) int {
	lower := func(i int) byte {
		if i >= len(s) {
			return 0
		}
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	if len(s) >= 2 && s[0] == 0xC5 && s[1] == 0xBF { // U+017F LATIN SMALL LETTER LONG S folds to s
		return 2
	}
	switch lower(0) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if lower(1) == 'e' {
			return 2
		}
	case 'l':
		if lower(1) == 'l' {
			return 2
		}
	}
	return 0
}
