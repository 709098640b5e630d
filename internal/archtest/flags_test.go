package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// flagSpelling matches a command-line flag as bear spells them: --name.
var flagSpelling = regexp.MustCompile(`(^|[^-\w])--[a-z][a-z0-9-]*`)

// flagSpellingAllowed are the string literals outside tools/ that may spell flags, by file, with
// why: they are not bear's flags, or they are keys of files written before the libraries named
// settings in their own terms, read for compatibility.
var flagSpellingAllowed = map[string][]string{
	"internal/mpirun/mpirun.go":        {`"--oversubscribe"`, `"--allow-run-as-root"`, `"--mca"`}, // mpirun's own flags
	"runtime/train/trainlog/record.go": {`"--model (content sha256)"`, `"--data split (sha256)"`, `"--tokenizer (sha256)"`},
}

// TestNoFlagSpellingsInLibraries: no string of a library (any non-test Go file outside tools/)
// spells a flag of bear: libraries name their options by their fields (package opterr), and
// only tools/bear knows the flags.
func TestNoFlagSpellingsInLibraries(t *testing.T) {
	m, err := loadModule(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, rel := range m.files {
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "tools/") || strings.HasSuffix(rel, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(m.root, rel), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || !flagSpelling.MatchString(lit.Value) {
				return true
			}
			for _, a := range flagSpellingAllowed[rel] {
				if lit.Value == a {
					return true
				}
			}
			t.Errorf("%s: %s spells a flag: name the option by its field (internal/opterr) and let tools/bear map it", fset.Position(lit.Pos()), lit.Value)
			return true
		})
	}
}
