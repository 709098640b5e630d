package atomicfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileModeAndFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("mode %v, err %v; want %v", st.Mode().Perm(), err, FileMode)
	}
	failed := errors.New("disk full")
	err = WriteFile(path, func(f *os.File) error {
		f.WriteString("half")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("content after a failed write %q, want the old one", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWriteDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	write := func(name string) func(string) error {
		return func(tmp string) error { return os.WriteFile(filepath.Join(tmp, name), []byte(name), 0o600) }
	}
	if err := WriteDir(dir, RefuseNonEmpty, write("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir, RefuseNonEmpty, write("two")); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second write into a full folder: %v, want ErrNotEmpty", err)
	}
	if err := WriteDir(dir, Replace, write("two")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "two" {
		t.Errorf("replaced folder holds %v, want only two", entries)
	}
	if st, err := os.Stat(filepath.Join(dir, "two")); err != nil || st.Mode().Perm() != FileMode {
		t.Errorf("file written 0600 by fill has mode %v (err %v), want %v", st.Mode().Perm(), err, FileMode)
	}
	failed := errors.New("fill failed")
	if err := WriteDir(dir, Replace, func(string) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("err %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "two" {
		t.Errorf("after a failed replace the folder holds %v", entries)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("temporaries left beside the folder: %v", entries)
	}
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if err := WriteDir(empty, RefuseNonEmpty, write("x")); err != nil {
		t.Errorf("an empty folder is reused: %v", err)
	}
}

func TestCheckDisjoint(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "model")
	os.Mkdir(model, 0o755)
	link := filepath.Join(root, "link")
	if err := os.Symlink(model, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		out  string
		want string // substring of the error, "" for none
	}{
		{filepath.Join(root, "merged"), ""},
		{model, "is the input"},
		{model + "/", "is the input"},
		{link, "is the input"},
		{filepath.Join(model, "sub"), "lies inside"},
		{filepath.Join(link, "sub", "deeper"), "lies inside"},
		{root, "contains the input"},
		{filepath.Join(root, "model2"), ""},
	}
	for _, c := range cases {
		err := CheckDisjoint("--out", c.out, model)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckDisjoint(%s): %v, want %q", c.out, err, c.want)
		}
	}
}
