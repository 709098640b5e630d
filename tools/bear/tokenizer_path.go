package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
)

// tokenizerEnv names a tokenizer.json to use when neither --tokenizer nor the model folder has one.
const tokenizerEnv = "BEAR_TOKENIZER"

// cachedTokenizer is where `make deps` puts the Llama-3.2 tokenizer, relative to the checkout.
const cachedTokenizer = ".cache/llama-3.2/tokenizer.json"

// llama3Vocab is the size of the Llama-3 vocabulary, the one the tokenizer of `make deps` encodes.
const llama3Vocab = 128256

// findTokenizer resolves the tokenizer.json every command uses, the same way everywhere:
// --tokenizer (explicit) when given, else MODEL/tokenizer.json when the command has a model
// folder (model may be ""), else $BEAR_TOKENIZER, else the file `make deps` fetched, looked for
// as the ONNX Runtime library is (the working folder, the executable's folder, and their
// parents). A path given by the user must exist; when nothing is found the error lists every
// place looked and what to do.
func findTokenizer(explicit, model string) (string, error) {
	if explicit != "" {
		return existingFile(explicit, "--tokenizer")
	}
	var looked []string
	if model != "" {
		p := filepath.Join(model, "tokenizer.json")
		if ok, err := isFile(p); err != nil || ok {
			return p, err
		}
		looked = append(looked, p)
	}
	if env := os.Getenv(tokenizerEnv); env != "" {
		return existingFile(env, "$"+tokenizerEnv)
	}
	looked = append(looked, "$"+tokenizerEnv+" (not set)")
	p, more, err := ortrun.FindCached(cachedTokenizer)
	if err != nil || p != "" {
		return p, err
	}
	looked = append(looked, more...)
	return "", fmt.Errorf("no tokenizer.json: looked in %s; %s", strings.Join(looked, ", "), tokenizerRemedy(model))
}

// tokenizerRemedy says what gets a tokenizer. `make deps` fetches the Llama-3.2 one, which is
// only right for a model with the Llama-3 vocabulary, so it is offered only then (or when there
// is no model to ask).
func tokenizerRemedy(model string) string {
	remedy := "pass --tokenizer FILE or set $" + tokenizerEnv
	if model != "" {
		remedy = "put the model's tokenizer.json in " + model + ", " + remedy
	}
	if cfg, err := hf.ReadConfig(model); model == "" || (err == nil && cfg.VocabSize == llama3Vocab) {
		remedy += "; for the Llama-3.2 tokenizer, run `make deps` in the bear checkout (it writes " + cachedTokenizer + ")"
	}
	return remedy
}

// existingFile returns path when it names a file, else an error naming where it came from.
func existingFile(path, from string) (string, error) {
	ok, err := isFile(path)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s %s: %w", from, path, err)
	case !ok:
		return "", fmt.Errorf("%s %s: no such file", from, path)
	}
	return path, nil
}

// isFile reports whether path is a regular file (or a link to one); a folder is an error.
func isFile(path string) (bool, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case st.IsDir():
		return false, fmt.Errorf("%s is a folder, want a tokenizer.json file", path)
	}
	return true, nil
}

// initTokenizer is the tokenizer.json `bear init` copies beside a new checkpoint: --tokenizer
// when given (an explicit "" copies none); else, for the Llama-3 vocabulary, the one
// findTokenizer finds without a model folder; other vocabularies get none unless asked.
func initTokenizer(flagValue string, flagSet bool, vocab int) (string, error) {
	switch {
	case flagValue != "":
		return existingFile(flagValue, "--tokenizer")
	case flagSet || vocab != llama3Vocab:
		return "", nil
	}
	path, err := findTokenizer("", "")
	if err != nil {
		return "", fmt.Errorf("a Llama-3 vocabulary needs its tokenizer.json beside the weights: %w", err)
	}
	return path, nil
}
