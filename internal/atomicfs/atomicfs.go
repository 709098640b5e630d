package atomicfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileMode is the mode of every file this package writes.
const FileMode fs.FileMode = 0o644

// WriteFile writes path through a temporary file in the same folder: fill writes the content,
// then the file is synced, given FileMode, renamed to path and the folder synced.
func WriteFile(path string, fill func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(FileMode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// WriteBuffered is WriteFile with a buffered writer.
func WriteBuffered(path string, write func(w io.Writer) error) error {
	return WriteFile(path, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// WriteBytes is WriteFile of a byte slice.
func WriteBytes(path string, data []byte) error {
	return WriteFile(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// DirMode says what WriteDir does when the folder already exists.
type DirMode int

const (
	// RefuseNonEmpty fails when the folder exists and holds anything (an empty folder is reused).
	RefuseNonEmpty DirMode = iota
	// Replace swaps the new folder in and removes the old one whole.
	Replace
)

// ErrNotEmpty is returned by WriteDir (wrapped) for an existing non-empty folder under
// RefuseNonEmpty.
var ErrNotEmpty = errors.New("folder exists and is not empty")

// WriteDir builds dir in a temporary sibling with fill, gives its files mode 0644 and its
// folders 0755, syncs every file in it, and renames it into place. Under Replace an existing dir is moved aside first and removed after the swap; a
// crash in between leaves it beside dir as ".NAME.old-*", never mixed with the new files.
func WriteDir(dir string, mode DirMode, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	if err := checkDirTarget(dir, mode); err != nil {
		return err
	}
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := fillAndSync(tmp, fill); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := swapIn(tmp, dir, parent, base); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return syncDir(parent)
}

func checkDirTarget(dir string, mode DirMode) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", dir, err)
	case len(entries) > 0 && mode == RefuseNonEmpty:
		return fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	return nil
}

func fillAndSync(tmp string, fill func(tmp string) error) error {
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	return filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		// Files written by fill follow the umask (os.WriteFile under umask 077 gives 0600):
		// the outputs get the usual modes whatever the umask.
		mode := FileMode
		if d.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
		return syncPath(path)
	})
}

// swapIn renames tmp to dir, moving an existing dir aside first and removing it afterwards.
func swapIn(tmp, dir, parent, base string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(tmp, dir)
	}
	old, err := os.MkdirTemp(parent, "."+base+".old-*")
	if err != nil {
		return err
	}
	aside := filepath.Join(old, base)
	if err := os.Rename(dir, aside); err != nil {
		os.Remove(old)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(aside, dir) // put the old folder back: the caller's error says what failed
		os.Remove(old)
		return err
	}
	return os.RemoveAll(old)
}

// syncDir makes a creation, rename or removal in dir durable.
func syncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// CheckDisjoint fails when out is one of inputs, lies inside one, or contains one (with
// symlinks resolved as far as the paths exist): writing there could destroy the input.
// flag names the output in the message, for example "--out".
func CheckDisjoint(flag, out string, inputs ...string) error {
	o, err := resolve(out)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, out, err)
	}
	for _, in := range inputs {
		i, err := resolve(in)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		switch {
		case o == i:
			return fmt.Errorf("%s %s is the input %s: write the output beside it", flag, out, in)
		case within(o, i):
			return fmt.Errorf("%s %s lies inside the input %s: write the output beside it", flag, out, in)
		case within(i, o):
			return fmt.Errorf("%s %s contains the input %s: write the output beside it", flag, out, in)
		}
	}
	return nil
}

// resolve makes path absolute and resolves symlinks in its longest existing prefix.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func within(path, dir string) bool {
	return strings.HasPrefix(path, dir+string(filepath.Separator)) || (dir == string(filepath.Separator) && path != dir)
}
