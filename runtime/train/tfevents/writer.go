package tfevents

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bearrec/bear/internal/atomicfs"
)

// Scalar is one named value of a step: Tag names the curve in TensorBoard ("train/loss"). A file
// stores Value rounded to a float32, which Read gives back as a float64.
type Scalar struct {
	Tag   string
	Value float64
}

// Writer appends scalar events to one event file. It is not safe for concurrent use, and one
// file must have one writer at a time.
type Writer struct {
	f    *os.File
	path string
	err  error // a failed write may have left part of a record, which no record may follow
}

// Open opens the event file at path for appending. A missing file is created (its folder must
// exist) holding the file_version event. An existing one is a run being resumed from the
// checkpoint of step keepThrough: the events of later steps are dropped, and so is a record
// torn by a kill; when that changes the file, the kept records are written byte for byte to a
// temporary file that is synced and renamed over it, so a crash leaves the old or the new file.
// A file that is damaged before its last record, or is not an event file, is an error and is
// left as it is.
func Open(path string, keepThrough int64) (*Writer, error) {
	if !strings.Contains(filepath.Base(path), "tfevents") {
		return nil, fmt.Errorf("tfevents: %s: TensorBoard reads only files whose name contains \"tfevents\"", path)
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created whole through a rename, so that no file ever lacks its file_version record.
		err = atomicfs.WriteBytes(path, appendRecord(nil, fileVersionEvent(seconds(time.Now()))))
	case err == nil:
		err = resume(path, b, keepThrough)
	}
	if err != nil {
		return nil, fmt.Errorf("tfevents: open: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	return &Writer{f: f, path: path}, nil
}

// resume drops the events after step keepThrough (never the file_version event) and a torn
// final record from the file whose content is b.
func resume(path string, b []byte, keepThrough int64) error {
	evs, torn, err := parseFile(path, b)
	if err != nil {
		return err
	}
	var kept []byte
	dropped := false
	for i, e := range evs {
		if i > 0 && e.ev.step > keepThrough {
			dropped = true
			continue
		}
		kept = append(kept, e.rec.raw...)
	}
	if !dropped && !torn {
		return nil // an untouched file stays the same file for a TensorBoard reading it
	}
	return replaceFile(path, kept)
}

// replaceFile atomically replaces path by data, keeping the mode the file had (atomicfs writes
// FileMode).
func replaceFile(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := atomicfs.WriteBytes(path, data); err != nil {
		return err
	}
	if st.Mode().Perm() != atomicfs.FileMode {
		return os.Chmod(path, st.Mode().Perm())
	}
	return nil
}

// Scalars appends one Event of the given step and wall time holding values, in a single write:
// a TensorBoard reading the file meanwhile sees whole records, and a killed process loses none
// of them (the page cache keeps them); Flush makes them survive a crash of the machine too.
// Tags must be non-empty, valid UTF-8 (protobuf strings) and distinct. Each value is stored as
// a float32 (see the package doc); a finite value too large for float32 is refused, not turned
// into ±Inf, and nothing of the call is written.
func (w *Writer) Scalars(step int64, wall time.Time, values []Scalar) error {
	if err := checkScalars(wall, values); err != nil {
		return fmt.Errorf("tfevents: %s: step %d: %w", w.path, step, err)
	}
	return w.write(appendRecord(nil, scalarsEvent(step, seconds(wall), values)))
}

func checkScalars(wall time.Time, values []Scalar) error {
	if wall.IsZero() {
		return errors.New("zero wall time")
	}
	if len(values) == 0 {
		return errors.New("no scalars")
	}
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		switch {
		case v.Tag == "":
			return errors.New("empty tag")
		case !utf8.ValidString(v.Tag):
			return fmt.Errorf("tag %q is not valid UTF-8", v.Tag)
		case seen[v.Tag]:
			return fmt.Errorf("tag %q given twice", v.Tag)
		}
		if _, ok := toFloat32(v.Value); !ok {
			return fmt.Errorf("tag %q: value %g is beyond float32's range (±%g), in which TensorBoard stores scalars", v.Tag, v.Value, math.MaxFloat32)
		}
		seen[v.Tag] = true
	}
	return nil
}

// seconds is an Event's wall_time: seconds since the Unix epoch, to the microsecond (a float64
// of today's seconds holds no finer).
func seconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

func (w *Writer) write(rec []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.f == nil {
		return fmt.Errorf("tfevents: %s: write after Close", w.path)
	}
	if _, err := w.f.Write(rec); err != nil {
		w.err = fmt.Errorf("tfevents: write %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Flush syncs the file to disk: the events written so far survive a crash of the machine.
// Training calls it at each checkpoint, whose step a resumed run passes to Open.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.f == nil {
		return fmt.Errorf("tfevents: %s: Flush after Close", w.path)
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("tfevents: sync %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Close syncs and closes the file; closing twice is a no-op.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tfevents: close %s: %w", w.path, cerr)
	}
	w.f = nil
	return err
}
