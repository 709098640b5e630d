package train

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeFileAtomic writes path through a temporary file beside it: write, fsync, rename, fsync
// of the folder. A crash leaves either the old file or the new one, never a torn one.
func writeFileAtomic(path string, write func(tmp string) error) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncPath(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncPath(filepath.Dir(path))
}

// writeDirAtomic builds a folder in a temporary sibling, syncs its files, and swaps it into
// place: an existing folder of that name is replaced whole, never mixed with the new files.
func writeDirAtomic(dir string, write func(tmp string) error) error {
	tmp, old := dir+".tmp", dir+".old"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := syncPath(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	os.RemoveAll(old)
	return syncPath(filepath.Dir(dir))
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// checkWritable makes sure the run folder can be created and written before any work starts.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("--out %s is not writable: %w", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}
