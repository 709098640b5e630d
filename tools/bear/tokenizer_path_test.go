package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/onnx/hf"
)

// writeConfig writes a config-only checkpoint of the tiny preset with the given vocabulary.
func writeConfig(t *testing.T, dir string, vocab int) string {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	p.Config.VocabSize = vocab
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{ConfigOnly: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFindTokenizer: --tokenizer, then the model folder, then $BEAR_TOKENIZER, then the file
// `make deps` writes, found from the working folder up; a failure lists every place looked and
// offers `make deps` only where its tokenizer fits the model.
func TestFindTokenizer(t *testing.T) {
	root := t.TempDir()
	file := func(rel string) string {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("{}"), 0o644)
		return p
	}
	explicit, env := file("explicit.json"), file("env.json")
	withTok := writeConfig(t, filepath.Join(root, "with"), llama3Vocab)
	modelTok := file("with/tokenizer.json")
	llama := writeConfig(t, filepath.Join(root, "llama"), llama3Vocab)
	other := writeConfig(t, filepath.Join(root, "other"), 1000)
	checkout := filepath.Join(root, "checkout")
	cached := file(filepath.Join("checkout", cachedTokenizer))
	deep := filepath.Join(checkout, "a", "b")
	os.MkdirAll(deep, 0o755)
	empty := filepath.Join(root, "empty")
	os.MkdirAll(empty, 0o755)
	cases := []struct {
		name, explicit, model, env, wd string
		want                           string   // the path found, or
		errs                           []string // what the error must say
		noErr                          []string // and must not
	}{
		{name: "--tokenizer first", explicit: explicit, model: withTok, env: env, wd: deep, want: explicit},
		{name: "--tokenizer missing", explicit: filepath.Join(root, "nope.json"), model: withTok, errs: []string{"--tokenizer " + filepath.Join(root, "nope.json"), "no such file"}},
		{name: "model folder next", model: withTok, env: env, wd: deep, want: modelTok},
		{name: "then the environment", model: llama, env: env, wd: deep, want: env},
		{name: "environment missing", model: llama, env: filepath.Join(root, "gone.json"), errs: []string{"$BEAR_TOKENIZER " + filepath.Join(root, "gone.json")}},
		{name: "then make deps' file, from a folder below the checkout", model: llama, wd: deep, want: cached},
		{name: "no model: make deps' file", wd: deep, want: cached},
		{name: "nothing, Llama-3 model", model: llama, wd: empty,
			errs: []string{filepath.Join(llama, "tokenizer.json"), "$BEAR_TOKENIZER (not set)", cachedTokenizer + " in " + empty, "make deps", "--tokenizer"}},
		{name: "nothing, other vocabulary: make deps would not help", model: other, wd: empty,
			errs: []string{filepath.Join(other, "tokenizer.json"), "put the model's tokenizer.json in " + other}, noErr: []string{"make deps"}},
		{name: "nothing, no model", wd: empty, errs: []string{"$BEAR_TOKENIZER (not set)", "make deps"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(tokenizerEnv, c.env)
			if c.wd != "" {
				t.Chdir(c.wd)
			}
			got, err := findTokenizer(c.explicit, c.model)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("found %q, want an error", got)
			}
			for _, s := range c.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			for _, s := range c.noErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q says %q", err, s)
				}
			}
		})
	}
}

// TestTokenizeWithoutEnvironment: from inside the checkout, bear tokenize finds the tokenizer
// `make deps` fetched without --tokenizer or $BEAR_TOKENIZER, as the ONNX Runtime library is.
func TestTokenizeWithoutEnvironment(t *testing.T) {
	testdeps.Tokenizer(t) // the checkout's file must exist for this test to mean anything
	t.Setenv(tokenizerEnv, "")
	var out bytes.Buffer
	if err := tokenizeMain(nil, strings.NewReader("hi\n"), &out); err != nil || out.String() != "[6151]\n" {
		t.Errorf("got %q, %v", out.String(), err)
	}
}

// TestInitTokenizer: bear init copies --tokenizer when given, else for a Llama-3 vocabulary
// the one findTokenizer finds, and nothing for other vocabularies or an explicit "".
func TestInitTokenizer(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	t.Setenv(tokenizerEnv, "")
	missing := filepath.Join(t.TempDir(), "nope.json")
	for _, c := range []struct {
		name, flag string
		set        bool
		vocab      int
		want, err  string
	}{
		{"explicit", tok, true, 1000, tok, ""},
		{"explicit missing: refused before any write", missing, true, llama3Vocab, "", "--tokenizer " + missing},
		{"explicit empty copies none", "", true, llama3Vocab, "", ""},
		{"other vocabulary copies none", "", false, 1000, "", ""},
	} {
		got, err := initTokenizer(c.flag, c.set, c.vocab)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) || got != c.want {
			t.Errorf("%s: got %q, %v; want %q, error %q", c.name, got, err, c.want, c.err)
		}
	}
	// Llama-3 vocabulary without a flag: found from the checkout (the test runs in tools/bear).
	if got, err := initTokenizer("", false, llama3Vocab); err != nil || !strings.HasSuffix(got, cachedTokenizer) {
		t.Errorf("Llama-3 vocabulary: got %q, %v; want the checkout's %s", got, err, cachedTokenizer)
	}
}
