package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// identityFormat versions what ContentSHA256 hashes: a change of the scheme must change every
// identity, never make two different schemes collide.
const identityFormat = "bear checkpoint content v1"

// ContentSHA256 is the identity of the model a checkpoint computes: the SHA-256 of its
// configuration (the canonical config.json of Config.JSON, so formatting and keys bear does not
// read do not count) and of every expected weight's name, stored dtype, shape and bytes, in the
// configuration's order. Two folders holding the same model share it, whatever their file
// names or sharding; a checkpoint that differs in one weight bit or one setting gets another.
// It is what training checkpoints, evaluation journals and shards, and the converted-weight
// cache identify a model by.
//
// Reading every weight costs seconds at the 1B shape, so the weights' part is computed once per
// process for a given state of the weight files (path, size, modification and change times,
// inode): training, its per-epoch evaluations and the weight conversion share one pass.
func (ck *Checkpoint) ContentSHA256() (string, error) {
	cfg, err := ck.Config.JSON()
	if err != nil {
		return "", err
	}
	weights, err := ck.weightsSHA256()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", identityFormat, cfg, weights)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// weightMemo holds the weights' hash of every checkpoint state this process has hashed.
var weightMemo sync.Map // fileStates string → hex SHA-256

func (ck *Checkpoint) weightsSHA256() (string, error) {
	key, err := fileStates(ck.Files)
	if err != nil {
		return "", err
	}
	if sum, ok := weightMemo.Load(key); ok {
		return sum.(string), nil
	}
	sum, err := ck.hashWeights()
	if err != nil {
		return "", err
	}
	// A file rewritten while it was read has a new state: the memo keeps the state seen before
	// the pass only if it is still the state after it.
	if after, err := fileStates(ck.Files); err == nil && after == key {
		weightMemo.Store(key, sum)
	}
	return sum, nil
}

// hashWeights reads every expected weight once.
func (ck *Checkpoint) hashWeights() (string, error) {
	h := sha256.New()
	buf := make([]byte, 4<<20)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, spec := range ck.Config.ExpectedWeights() {
		t := ck.Weights[spec.Name]
		fmt.Fprintf(h, "%s %s %v %d\n", t.Name, t.DType, t.Shape, t.Size)
		f, ok := files[t.File]
		if !ok {
			var err error
			if f, err = os.Open(t.File); err != nil {
				return "", err
			}
			files[t.File] = f
		}
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, t.Offset, t.Size), buf); err != nil {
			return "", fmt.Errorf("%s: tensor %s: %w", t.File, t.Name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FilesState describes the current state of the checkpoint's weight files (path, size,
// modification and change times, inode): equal states mean, in practice, equal bytes.
func (ck *Checkpoint) FilesState() (string, error) { return fileStates(ck.Files) }

// fileStates describes the current state of files: any write, replacement or touch changes it
// (the change time cannot be set back by cp -p or touch).
func fileStates(files []string) (string, error) {
	s := ""
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", err
		}
		var dev, ino uint64
		var ctime time.Time
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			dev, ino, ctime = uint64(sys.Dev), sys.Ino, time.Unix(sys.Ctim.Unix())
		}
		s += fmt.Sprintf("%q %d %d %d %d:%d\n", abs, st.Size(), st.ModTime().UnixNano(), ctime.UnixNano(), dev, ino)
	}
	return s, nil
}

// FileSHA256 is the hex SHA-256 of a file's contents (a weight file's, for manifests).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
