package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// optionName matches how the libraries name an option in their messages.
var optionName = regexp.MustCompile(`\b(train|trainset|evaluate|ortrun|lossgrad|llama)\.(Options|Config|LoRASpec|ModelOptions|SessionOptions)(\.[A-Z]\w*)+|\bortrun\.Init\(path\)`)

// libraryOptionNames lists the option names in the strings of the libraries' non-test files,
// and the fields given to runtime/train's opt (train.Options.FIELD).
func libraryOptionNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{} // name -> where
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || rel == "tools" || rel == "deploy") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING {
					for _, m := range optionName.FindAllString(s, -1) {
						names[m] = fset.Position(n.Pos()).String()
					}
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "opt" && len(n.Args) == 1 && strings.HasPrefix(rel, "runtime/train/") {
					if lit, ok := n.Args[0].(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						names["train.Options."+s] = fset.Position(n.Pos()).String()
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// unflagged are the options the libraries name that no flag of bear sets (bear leaves them at
// their defaults, so their errors cannot reach a user of the command line).
var unflagged = map[string]bool{"lossgrad.Config.Workers": true}

// TestOptionNamesMapped: every option the libraries name in a message is one bear maps to a
// flag, so that no error of bear shows a library's field name.
func TestOptionNamesMapped(t *testing.T) {
	all := joinOptions(trainOptions, evalOptions, ortOptions)
	for k := range unflagged {
		all[k] = ""
	}
	names := libraryOptionNames(t)
	if len(names) < 20 {
		t.Fatalf("found %d option names in the libraries: the scan is broken", len(names))
	}
	for name, where := range names {
		if _, ok := all[name]; !ok {
			t.Errorf("%s: option %s has no flag in optionflags.go", where, name)
		}
	}
}

func TestFlagNames(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"train.Options.LR 2: want a learning rate in (0, 1]", "--lr 2: want a learning rate in (0, 1]"},
		{"train.Options.LoRA.Targets: q_proj is listed twice", "--lora-targets: q_proj is listed twice"},
		{"trainset.Options.Batch 100: not a multiple of trainset.Options.NormGroup 16", "--batch 100: not a multiple of --norm-group 16"},
		{"continue by setting train.Options.Resume to runs/x", "continue by setting --resume to runs/x"},
		{"no option here", "no option here"},
	} {
		if got := flagNames(c.in, trainOptions); got != c.want {
			t.Errorf("flagNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
