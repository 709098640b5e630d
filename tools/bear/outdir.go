package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/internal/atomicfs"
)

// checkOutDir validates a command's --out folder before any work: it must not be, hold or lie
// inside one of the inputs (writing there could destroy them), must not be a file, and must be
// absent or empty unless force, which replaces it whole (a folder mixing an old sharded
// checkpoint with new files would be read wrongly).
func checkOutDir(out string, force bool, inputs ...string) error {
	if err := atomicfs.CheckDisjoint("--out", out, inputs...); err != nil {
		return err
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case !st.IsDir():
		return fmt.Errorf("--out %s is a file, want a folder", out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if len(entries) > 0 && !force {
		return notEmptyError(out)
	}
	return nil
}

// checkOutFile validates a command's --out file as checkOutDir does a folder: not one of the
// inputs nor inside one, not a folder, new unless force, in a folder that exists.
func checkOutFile(out string, force bool, inputs ...string) error {
	if err := atomicfs.CheckDisjoint("--out", out, inputs...); err != nil {
		return err
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case st.IsDir():
		return fmt.Errorf("--out %s is a folder, want a file", out)
	case !force:
		return fmt.Errorf("--out %s exists: pass --force to replace it, or choose another file", out)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("--out %s: the folder %s does not exist", out, filepath.Dir(out))
	}
	return nil
}

func notEmptyError(out string) error {
	return fmt.Errorf("--out %s exists and is not empty: pass --force to replace it whole, or choose another folder", out)
}

// writeOutDir builds --out in a temporary sibling with fill and swaps it in whole
// (atomicfs.WriteDir): an interrupted or failed command leaves the old folder, or none, never a
// partial or mixed one. force replaces a non-empty folder.
func writeOutDir(out string, force bool, fill func(tmp string) error) error {
	mode := atomicfs.RefuseNonEmpty
	if force {
		mode = atomicfs.Replace
	}
	err := atomicfs.WriteDir(out, mode, fill)
	if errors.Is(err, atomicfs.ErrNotEmpty) {
		return notEmptyError(out)
	}
	return err
}
