package testdeps

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TokenizerPath is $BEAR_TOKENIZER (exported by the Makefile), else the repository's
// .cache/llama-3.2/tokenizer.json.
func TokenizerPath() string {
	if p := os.Getenv("BEAR_TOKENIZER"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".cache", "llama-3.2", "tokenizer.json")
}

// Tokenizer returns TokenizerPath, failing the test when the file is missing.
func Tokenizer(t testing.TB) string {
	t.Helper()
	p := TokenizerPath()
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Llama-3.2 tokenizer.json missing (run `make deps`): %v", err)
	}
	return p
}
