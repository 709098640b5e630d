package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// exportedDecl is an exported package-level identifier and the identifiers of its own package
// that its declaration mentions (a function's signature, a type's fields).
type exportedDecl struct {
	pkg, name string
	pos       string
	mentions  []string
	// ofType is a constant's named type (given, or carried down a const group): the values of
	// a used enum type are used with it.
	ofType string
}

// TestExportedSurface: every exported identifier of a library package is used outside its
// package (by non-test code or another package's tests), directly or as part of one that is:
// a type in the signature or fields of a used function or type counts as used. What nothing
// outside uses is unexported or removed, so that a package's surface is what its users need.
// Generated files and commands (package main) are exempt.
func TestExportedSurface(t *testing.T) {
	m, err := loadModule(".")
	if err != nil {
		t.Fatal(err)
	}
	decls, err := exportedDecls(m)
	if err != nil {
		t.Fatal(err)
	}
	used, err := usesOutside(m)
	if err != nil {
		t.Fatal(err)
	}
	// Close over mentions: what a used declaration mentions is used too, and so are the
	// constants of a used type.
	for changed := true; changed; {
		changed = false
		for key, d := range decls {
			if !used[key] && d.ofType != "" && used[d.pkg+"."+d.ofType] {
				used[key], changed = true, true
			}
			if !used[key] {
				continue
			}
			for _, n := range d.mentions {
				if k := d.pkg + "." + n; decls[k] != nil && !used[k] {
					used[k], changed = true, true
				}
			}
		}
	}
	var unused []string
	for key, d := range decls {
		if !used[key] {
			unused = append(unused, d.pos+": "+key)
		}
	}
	sort.Strings(unused)
	for _, u := range unused {
		t.Errorf("%s is exported but nothing outside its package uses it: unexport or remove it", u)
	}
}

// exportedDecls collects the exported package-level identifiers of the module's library
// packages, by "package/path.Name".
func exportedDecls(m *module) (map[string]*exportedDecl, error) {
	decls := map[string]*exportedDecl{}
	methods := map[string][]ast.Node{} // by receiver type
	fset := token.NewFileSet()
	for _, rel := range m.files {
		f, err := parser.ParseFile(fset, filepath.Join(m.root, rel), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if f.Name.Name == "main" || ast.IsGenerated(f) {
			continue
		}
		pkg := packageOf(rel)
		add := func(name *ast.Ident, node ast.Node, ofType string) {
			if !name.IsExported() {
				return
			}
			d := &exportedDecl{pkg: pkg, name: name.Name, pos: fset.Position(name.Pos()).String(), ofType: ofType}
			ast.Inspect(node, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok && id.IsExported() && id != name {
					d.mentions = append(d.mentions, id.Name)
				}
				return true
			})
			decls[pkg+"."+name.Name] = d
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					add(d.Name, d.Type, "")
				} else if recv := receiverType(d); recv != "" && d.Name.IsExported() {
					// an exported method's signature belongs to its type's surface
					methods[pkg+"."+recv] = append(methods[pkg+"."+recv], d.Type)
				}
			case *ast.GenDecl:
				group := "" // the type a const group's later specs carry down
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						add(s.Name, s.Type, "")
					case *ast.ValueSpec:
						if id, ok := s.Type.(*ast.Ident); ok {
							group = id.Name
						} else if s.Type != nil || len(s.Values) > 0 && d.Tok != token.CONST {
							group = ""
						}
						for _, n := range s.Names {
							add(n, s, group)
						}
					}
				}
			}
		}
	}
	for key, sigs := range methods {
		if d := decls[key]; d != nil {
			for _, sig := range sigs {
				ast.Inspect(sig, func(n ast.Node) bool {
					if id, ok := n.(*ast.Ident); ok && id.IsExported() {
						d.mentions = append(d.mentions, id.Name)
					}
					return true
				})
			}
		}
	}
	return decls, nil
}

// receiverType is the name of a method's receiver type ("" when it cannot tell).
func receiverType(d *ast.FuncDecl) string {
	t := d.Recv.List[0].Type
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	switch t := t.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr: // a generic type T[P]
		if id, ok := t.X.(*ast.Ident); ok {
			return id.Name
		}
	case *ast.IndexListExpr:
		if id, ok := t.X.(*ast.Ident); ok {
			return id.Name
		}
	}
	return ""
}

// usesOutside lists "package/path.Name" for every selector pkg.Name in a file (test files
// included) outside the package that declares Name.
func usesOutside(m *module) (map[string]bool, error) {
	used := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(m.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != m.root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != m.root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(m.root, path)
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		imports := map[string]string{} // local name -> package path relative to the module
		for _, im := range f.Imports {
			p := strings.Trim(im.Path.Value, `"`)
			rp, ok := strings.CutPrefix(p, m.path+"/")
			if !ok {
				continue
			}
			name := rp[strings.LastIndex(rp, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = rp
		}
		own := packageOf(filepath.ToSlash(rel))
		ast.Inspect(f, func(n ast.Node) bool {
			if se, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := se.X.(*ast.Ident); ok {
					if p, ok := imports[id.Name]; ok && p != own {
						used[p+"."+se.Sel.Name] = true
					}
				}
			}
			return true
		})
		return nil
	})
	return used, err
}
