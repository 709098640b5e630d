package trainlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"

	"github.com/bearrec/bear/internal/atomicfs"
)

// Writer appends records to a log, one line each, synced to disk before the write returns.
type Writer struct {
	f        *os.File
	path     string
	lastStep int   // the highest step in the file: steps must increase, evaluations may not go back
	err      error // a failed write may have left half a line: later writes would follow it
}

// Open opens the log at path for appending, creating it if needed. Records with a step above
// keepThroughStep are removed first, and so is a final line cut short by a kill: a resumed run
// passes the step of the checkpoint it resumes from, a fresh run 0 (which empties the file, the
// run record at step 0 included).
// The removal writes the kept lines, byte for byte, to a temporary file in the same folder,
// syncs it and renames it over the log, so a crash at any point leaves either the old or the
// new file. A malformed line other than the last is an error and leaves the file as it is.
func Open(path string, keepThroughStep int) (*Writer, error) {
	if keepThroughStep < 0 {
		return nil, fmt.Errorf("trainlog: keep-through step %d, want >= 0", keepThroughStep)
	}
	data, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	recs, torn, err := parseLog(path, data)
	if err != nil {
		return nil, fmt.Errorf("resume log: %w", err)
	}
	w := &Writer{path: path}
	var kept [][]byte
	dropped := 0
	for _, r := range recs {
		if r.step > keepThroughStep || keepThroughStep == 0 { // 0: a fresh run, whose run record is at step 0
			dropped++
			continue
		}
		kept = append(kept, r.raw)
		w.lastStep = max(w.lastStep, r.step)
	}
	if dropped > 0 || torn {
		if err := replaceFile(path, kept); err != nil {
			return nil, fmt.Errorf("resume log %s: %w", path, err)
		}
	}
	if !existed {
		// Created empty through atomicfs: mode 0644 whatever the umask, and the new name
		// synced, so that it survives a crash as well as the lines written under it.
		if err := atomicfs.WriteBytes(path, nil); err != nil {
			return nil, fmt.Errorf("create log: %w", err)
		}
	}
	if w.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return nil, err
	}
	return w, nil
}

// LastStep returns the highest step in the log: after Open, the last one kept.
func (w *Writer) LastStep() int { return w.lastStep }

// WriteStep appends one step record. Steps must increase; non-finite values are written as null.
func (w *Writer) WriteStep(s Step) error {
	if s.Step <= w.lastStep {
		return fmt.Errorf("trainlog: step %d written after step %d", s.Step, w.lastStep)
	}
	line, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("trainlog: step %d: %w", s.Step, err)
	}
	if err := w.writeLine(line); err != nil {
		return err
	}
	w.lastStep = s.Step
	return nil
}

// WriteRun appends the record of a run's start (or resume) at step r.Step, which must not be
// below the last step written.
func (w *Writer) WriteRun(r Run) error {
	if r.Step < w.lastStep {
		return fmt.Errorf("trainlog: run record at step %d written after step %d", r.Step, w.lastStep)
	}
	r.Kind = kindRun
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("trainlog: run record: %w", err)
	}
	if err := w.writeLine(line); err != nil {
		return err
	}
	w.lastStep = max(w.lastStep, r.Step)
	return nil
}

// WriteEval appends one evaluation record. Its metric keys are written in lower case; the
// metrics must be finite and the step must not be below the last step written.
func (w *Writer) WriteEval(e Eval) error {
	if e.Step < w.lastStep {
		return fmt.Errorf("trainlog: evaluation at step %d written after step %d", e.Step, w.lastStep)
	}
	if math.IsNaN(e.ElapsedS) || math.IsInf(e.ElapsedS, 0) {
		return fmt.Errorf("trainlog: evaluation at step %d: elapsed_s %v", e.Step, e.ElapsedS)
	}
	if e.Split != "valid" && e.Split != "test" {
		return fmt.Errorf("trainlog: evaluation at step %d: split %q, want valid or test", e.Step, e.Split)
	}
	metrics := make(map[string]float64, len(e.Metrics))
	for k, v := range e.Metrics {
		lower := strings.ToLower(k)
		if _, dup := metrics[lower]; dup {
			return fmt.Errorf("trainlog: evaluation at step %d: metric %q given twice", e.Step, lower)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("trainlog: evaluation at step %d: metric %s = %v", e.Step, k, v)
		}
		metrics[lower] = v
	}
	e.Kind, e.Metrics = kindEval, metrics
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("trainlog: evaluation at step %d: %w", e.Step, err)
	}
	if err := w.writeLine(line); err != nil {
		return err
	}
	w.lastStep = max(w.lastStep, e.Step)
	return nil
}

// writeLine appends line and '\n' in one write and syncs: a kill leaves at most one torn
// final line, which Open and Read know to drop.
func (w *Writer) writeLine(line []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.f == nil {
		return fmt.Errorf("trainlog: %s: write after Close", w.path)
	}
	if _, err := w.f.Write(append(line, '\n')); err != nil {
		w.err = fmt.Errorf("trainlog: write %s: %w", w.path, err)
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("trainlog: sync %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Close closes the file; closing twice is a no-op.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// replaceFile atomically replaces path by the concatenation of lines. A log the user gave
// another mode (0640, say) gets it back after the rename; atomicfs writes FileMode.
func replaceFile(path string, lines [][]byte) error {
	mode := atomicfs.FileMode
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	err := atomicfs.WriteFile(path, func(f *os.File) error {
		for _, l := range lines {
			if _, err := f.Write(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && mode != atomicfs.FileMode {
		err = os.Chmod(path, mode)
	}
	return err
}
