package archtest

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function may be, from its func line to its closing brace.
const maxFuncLines = 100

// rule says which project packages a package may import (see rules).
type rule struct {
	pkg     string   // package pattern, relative to the module root
	imports []string // patterns of the project packages it may import; nil: none
}

// matches reports whether a package (relative path) falls under a pattern.
func matches(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// ruleFor returns the entry of table that governs pkg: the exact one, else the longest
// "x/..." that covers it.
func ruleFor(table []rule, pkg string) (rule, bool) {
	best, found := rule{}, false
	for _, r := range table {
		if r.pkg == pkg {
			return r, true
		}
		if strings.HasSuffix(r.pkg, "/...") && matches(r.pkg, pkg) && (!found || len(r.pkg) > len(best.pkg)) {
			best, found = r, true
		}
	}
	return best, found
}

// isTools reports whether a package lies under tools/.
func isTools(pkg string) bool { return matches("tools/...", pkg) }

// module is one Go module on disk: its root folder, its path, and its non-test Go files
// (paths relative to the root, slash-separated, sorted).
type module struct {
	root  string
	path  string
	files []string
}

// loadModule finds the module containing dir and lists its non-test Go files.
func loadModule(dir string) (*module, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return nil, fmt.Errorf("no go.mod above %s", dir)
		}
		root = parent
	}
	m := &module{root: root}
	if m.path, err = modulePath(filepath.Join(root, "go.mod")); err != nil {
		return nil, err
	}
	if m.files, err = goFiles(root); err != nil {
		return nil, err
	}
	return m, nil
}

// modulePath reads the module directive of a go.mod file.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			if p, err := strconv.Unquote(strings.TrimSpace(rest)); err == nil {
				return p, nil
			}
			return strings.TrimSpace(rest), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", gomod, err)
	}
	return "", fmt.Errorf("%s: no module directive", gomod)
}

// goFiles lists the non-test .go files below root as the go command sees packages: folders
// named testdata or starting with "." or "_", and nested modules, are skipped.
func goFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") &&
			!strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	sort.Strings(files)
	return files, nil
}

// packageOf is the package (folder relative to the module root) of a file.
func packageOf(file string) string {
	dir := filepath.ToSlash(filepath.Dir(file))
	if dir == "." {
		return ""
	}
	return dir
}

// importProblems checks every file's project imports against table and returns one message
// per package without an entry and per forbidden (package, import) pair.
func importProblems(m *module, table []rule) ([]string, error) {
	var problems []string
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range m.files {
		f, err := parser.ParseFile(fset, filepath.Join(m.root, file), nil, parser.ImportsOnly)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		pkg := packageOf(file)
		r, ok := ruleFor(table, pkg)
		if !ok {
			if !seen[pkg] {
				seen[pkg] = true
				problems = append(problems, fmt.Sprintf("package %q (%s) has no entry in the import table: add it to rules in internal/archtest/rules_test.go with the project packages it may import", pkg, file))
			}
			continue
		}
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: import %s: %w", file, spec.Path.Value, err)
			}
			dep, ok := projectPackage(m.path, imp)
			if !ok || dep == pkg || seen[pkg+" -> "+dep] {
				continue
			}
			if msg := forbidden(r, pkg, dep); msg != "" {
				seen[pkg+" -> "+dep] = true
				problems = append(problems, fmt.Sprintf("%s: package %q imports %q: %s", file, pkg, dep, msg))
			}
		}
	}
	return problems, nil
}

// projectPackage returns an import path relative to the module root, if it is in the module.
func projectPackage(modPath, imp string) (string, bool) {
	if imp == modPath {
		return "", true
	}
	rel, ok := strings.CutPrefix(imp, modPath+"/")
	return rel, ok
}

// forbidden says why pkg (governed by r) may not import dep, or "" if it may.
func forbidden(r rule, pkg, dep string) string {
	if isTools(dep) && !isTools(pkg) {
		return "nothing outside tools/ may import tools/..."
	}
	if slices.ContainsFunc(r.imports, func(p string) bool { return matches(p, dep) }) {
		return ""
	}
	if len(r.imports) == 0 {
		return fmt.Sprintf("entry %q may import no project package", r.pkg)
	}
	return fmt.Sprintf("entry %q may import only %s", r.pkg, strings.Join(r.imports, ", "))
}

// longFunctions returns one message per function or method longer than limit lines in a
// non-generated file.
func longFunctions(m *module, limit int) ([]string, error) {
	var problems []string
	fset := token.NewFileSet()
	for _, file := range m.files {
		f, err := parser.ParseFile(fset, filepath.Join(m.root, file), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		if ast.IsGenerated(f) {
			continue
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start := fset.Position(fd.Pos()).Line // the func keyword (doc comment excluded)
			n := fset.Position(fd.Body.Rbrace).Line - start + 1
			if n > limit {
				problems = append(problems, fmt.Sprintf("%s:%d: %s is %d lines (limit %d): split it along its steps", file, start, funcName(fd), n, limit))
			}
		}
	}
	return problems, nil
}

// funcName is Name for a function and (Recv).Name or (*Recv).Name for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	star := ""
	if s, ok := t.(*ast.StarExpr); ok {
		star, t = "*", s.X
	}
	switch x := t.(type) { // drop type parameters: T[F] -> T
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	recv := "?"
	if id, ok := t.(*ast.Ident); ok {
		recv = id.Name
	}
	return fmt.Sprintf("(%s%s).%s", star, recv, fd.Name.Name)
}

// thisModule loads the module this test runs in.
func thisModule(t *testing.T) *module {
	t.Helper()
	m, err := loadModule(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.files) == 0 {
		t.Fatalf("no Go files found below %s", m.root)
	}
	return m
}

// TestImportDirection enforces the import table on the whole module.
func TestImportDirection(t *testing.T) {
	m := thisModule(t)
	problems, err := importProblems(m, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestFunctionLength enforces the function length limit on the whole module.
func TestFunctionLength(t *testing.T) {
	m := thisModule(t)
	problems, err := longFunctions(m, maxFuncLines)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestRulesTable checks the table itself: patterns well formed, each package listed once.
func TestRulesTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.pkg] {
			t.Errorf("entry %q appears twice", r.pkg)
		}
		seen[r.pkg] = true
		for _, p := range append([]string{r.pkg}, r.imports...) {
			if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(strings.TrimSuffix(p, "..."), "...") {
				t.Errorf("entry %q: malformed pattern %q", r.pkg, p)
			}
		}
	}
}
