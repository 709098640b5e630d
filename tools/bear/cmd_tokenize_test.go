package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
)

func TestTokenizeCommand(t *testing.T) {
	tokPath := testdeps.Tokenizer(t)
	cases := []struct {
		name string
		args []string
		in   string
		want string
	}{
		{"plain", nil, "### Response:\nhi\n", "[14711,6075,25]\n[6151]\n"},
		{"special", []string{"--special"}, "hi\n", "[128000,6151]\n"},
		{"json", []string{"--json"}, "\"### Response:\\n\"\n", "[14711,6075,512]\n"},
		{"pad", []string{"--pad"}, "<pad>\n", "[128256]\n"},
		{"decode", []string{"--decode"}, "[6151]\n[128000,6151]\n", "hi\n<|begin_of_text|>hi\n"},
		{"decode special json", []string{"--decode", "--special", "--json"}, "[128000,14711,6075,512]\n", "\"### Response:\\n\"\n"},
		{"no final newline", nil, "hi", "[6151]\n"},
		{"empty line", nil, "\n", "[]\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		args := append([]string{"--tokenizer", tokPath}, c.args...)
		if err := tokenizeMain(args, strings.NewReader(c.in), &out); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if out.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, out.String(), c.want)
		}
	}
	if err := tokenizeMain([]string{"--tokenizer", tokPath, "--decode"}, strings.NewReader("not json\n"), &bytes.Buffer{}); err == nil {
		t.Error("decode of a bad line: no error")
	}
}
