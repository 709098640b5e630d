package tfevents

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wallOf is the time whose seconds() is ev.WallTime (a whole number of microseconds).
func wallOf(ev event) time.Time {
	return time.UnixMicro(int64(math.Round(ev.WallTime * 1e6)))
}

// writeEvents opens path with keepThrough, writes evs and closes it.
func writeEvents(t *testing.T, path string, keepThrough int64, evs []event) {
	t.Helper()
	w, err := Open(path, keepThrough)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := w.Scalars(ev.Step, wallOf(ev), ev.Scalars); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// stored is what Read and TensorBoard give back for a value x that Scalars wrote: x rounded to
// float32 and widened to float64, any NaN as the float32 quiet NaN 0x7fc00000. TestStored checks
// it against float32 bit patterns worked out independently.
func stored(x float64) float64 {
	if math.IsNaN(x) {
		return float64(math.Float32frombits(0x7fc00000))
	}
	return float64(float32(x))
}

// storedEvents is written with each value replaced by stored(value).
func storedEvents(written []event) []event {
	out := make([]event, len(written))
	for i, ev := range written {
		out[i] = ev
		out[i].Scalars = make([]Scalar, len(ev.Scalars))
		for j, s := range ev.Scalars {
			out[i].Scalars[j] = Scalar{s.Tag, stored(s.Value)}
		}
	}
	return out
}

// checkRead checks that Read returns the events written, each value bit for bit as stored.
func checkRead(t *testing.T, path string, written []event) {
	t.Helper()
	checkReadExact(t, path, storedEvents(written))
}

// checkReadExact checks that Read returns exactly want, bit for bit.
func checkReadExact(t *testing.T, path string, want []event) {
	t.Helper()
	got, err := readEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Read: %d events, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Step != w.Step || math.Float64bits(g.WallTime) != math.Float64bits(w.WallTime) || len(g.Scalars) != len(w.Scalars) {
			t.Fatalf("Read event %d: %+v, want %+v", i, g, w)
		}
		for j, s := range g.Scalars {
			if ws := w.Scalars[j]; s.Tag != ws.Tag || math.Float64bits(s.Value) != math.Float64bits(ws.Value) {
				t.Fatalf("Read event %d value %d: %q = %v (%016x), want %q = %v (%016x)",
					i, j, s.Tag, s.Value, math.Float64bits(s.Value), ws.Tag, ws.Value, math.Float64bits(ws.Value))
			}
		}
	}
}

// stepEvents are events of steps from..to, one per step, with values derived from the step.
func stepEvents(from, to int64) []event {
	var evs []event
	for s := from; s <= to; s++ {
		evs = append(evs, event{Step: s, WallTime: 1700000000 + float64(s)/4, Scalars: []Scalar{
			{"loss", 1 / float64(s)}, {"lr", float64(s) * 1e-4}}})
	}
	return evs
}

// recordStarts returns the byte offset of every record of the file.
func recordStarts(t *testing.T, b []byte) []int {
	t.Helper()
	var starts []int
	for off := 0; off < len(b); {
		starts = append(starts, off)
		off += headerLen + int(binary.LittleEndian.Uint64(b[off:])) + footerLen
	}
	return starts
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMaskedCRC(t *testing.T) {
	// CRC-32C of "123456789" is 0xe3069283 (the standard check value); masked by hand.
	c := uint32(0xe3069283)
	if got, want := maskedCRC([]byte("123456789")), (c>>15|c<<17)+0xa282ead8; got != want {
		t.Fatalf("maskedCRC = %#x, want %#x", got, want)
	}
}

func TestResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.out.tfevents.1.test")
	writeEvents(t, path, 0, stepEvents(1, 10))
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	starts := recordStarts(t, before)

	// Resumed from the checkpoint of step 6: steps 7..10 go, 7..12 are written again.
	writeEvents(t, path, 6, stepEvents(7, 12))
	after := readFile(t, path)
	if !bytes.Equal(after[:starts[7]], before[:starts[7]]) {
		t.Fatal("resume changed the kept records (file_version and steps 1..6)")
	}
	want := stepEvents(1, 12)
	checkRead(t, path, want)
	checkPython(t, path, want)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after resume: %v %v, want 0640", st.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// Nothing to drop: the file is appended to in place, not replaced.
	st0, _ := os.Stat(path)
	writeEvents(t, path, 12, stepEvents(13, 13))
	st1, _ := os.Stat(path)
	if !os.SameFile(st0, st1) {
		t.Fatal("a resume that drops nothing replaced the file")
	}
	checkPython(t, path, stepEvents(1, 13))

	// keepThrough 0 keeps only the file_version event.
	writeEvents(t, path, 0, stepEvents(1, 2))
	checkRead(t, path, stepEvents(1, 2))
	checkPython(t, path, stepEvents(1, 2))
}

func TestTornTailDropped(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "events.out.tfevents.1.orig")
	writeEvents(t, orig, 0, stepEvents(1, 5))
	b := readFile(t, orig)
	starts := recordStarts(t, b)
	last := starts[len(starts)-1]
	recLen := len(b) - last

	damaged := map[string][]byte{"bad data CRC": append(bytes.Clone(b[:len(b)-1]), b[len(b)-1]^1)}
	damaged["zeros after"] = append(bytes.Clone(b[:last]), make([]byte, 100)...)
	for _, cut := range []int{1, 7, 8, 11, 12, 13, recLen / 2, recLen - 4, recLen - 1} {
		damaged["cut at +"+strconv.Itoa(cut)] = b[:last+cut]
	}
	for name, content := range damaged {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			checkRead(t, path, stepEvents(1, 4)) // Read skips a torn tail too
			w, err := Open(path, 100)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, path), b[:last]) {
				t.Fatal("Open did not cut the file at the start of the torn record")
			}
			writeEvents(t, path, 100, stepEvents(5, 6))
			checkPython(t, path, stepEvents(1, 6))
		})
	}
}

// TestDamageRefused checks that damage before the last record, or a file that is not an event
// file, is an error naming the file (and the offset), and that the file is left unchanged.
func TestDamageRefused(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "events.out.tfevents.1.orig")
	writeEvents(t, orig, 0, stepEvents(1, 5))
	b := readFile(t, orig)
	starts := recordStarts(t, b)
	flip := func(at int) []byte { c := bytes.Clone(b); c[at] ^= 0x10; return c }

	noVersion := appendRecord(nil, scalarsEvent(1, 1, []Scalar{{"a", 1}}))
	cases := []struct {
		name, want string
		content    []byte
	}{
		{"length of record 2", "bad length checksum of the record at byte " + strconv.Itoa(starts[2]), flip(starts[2] + 1)},
		{"length CRC of record 3", "bad length checksum of the record at byte " + strconv.Itoa(starts[3]), flip(starts[3] + 9)},
		{"data of record 3", "bad data checksum of the record at byte " + strconv.Itoa(starts[3]), flip(starts[3] + 20)},
		{"data of the file_version", "not a TensorBoard event file: tfevents: ", flip(15)},
		{"garbage between records", "at byte " + strconv.Itoa(starts[2]), append(append(bytes.Clone(b[:starts[2]]), "junk"...), b[starts[2]:]...)},
		{"text file", "not a TensorBoard event file", []byte("step,loss\n1,0.5\n2,0.25\n3,0.125\n")},
		{"short text file", "not a TensorBoard event file", []byte("hello\n")},
		{"empty file", "not a TensorBoard event file", nil},
		{"no file_version", "not a TensorBoard event file", append(noVersion, b...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
			if err := os.WriteFile(path, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, 3)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want an error naming %s and %q", err, path, c.want)
			}
			if _, err := readEvents(path); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read: %v, want an error with %q", err, c.want)
			}
			if !bytes.Equal(readFile(t, path), c.content) {
				t.Fatal("a refused file was changed")
			}
			if left, _ := os.ReadDir(filepath.Dir(path)); len(left) != 1 {
				t.Fatalf("files left beside it: %v", left)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "train.log"), 0); err == nil || !strings.Contains(err.Error(), "tfevents") {
		t.Fatalf("a name without tfevents: %v", err)
	}
	missing := filepath.Join(dir, "no-such-dir", "events.out.tfevents.1.x")
	if _, err := Open(missing, 0); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a missing folder: %v, want an error naming %s", err, missing)
	}
}

func TestScalarsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	w, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, call := range map[string]func() error{
		"empty tag":  func() error { return w.Scalars(1, now, []Scalar{{"", 1}}) },
		"twice":      func() error { return w.Scalars(1, now, []Scalar{{"a", 1}, {"a", 2}}) },
		"not UTF-8":  func() error { return w.Scalars(1, now, []Scalar{{"\xff", 1}}) },
		"no scalars": func() error { return w.Scalars(1, now, nil) },
		"zero time":  func() error { return w.Scalars(1, time.Time{}, []Scalar{{"a", 1}}) },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	// A finite value that float32 rounds to ±Inf is refused, naming its tag, and nothing of the
	// call is written; NaN, ±Inf and the largest float32s are not (TestPythonReaderAgrees).
	tie := 0x1p128 - 0x1p103 // halfway between MaxFloat32 and 2^128: rounds to even, 2^128
	for _, x := range []float64{math.MaxFloat64, -math.MaxFloat64, 1e39, -1e39, tie, -tie} {
		err := w.Scalars(1, now, []Scalar{{"fine", 1}, {"eval/big", x}})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"eval/big"`) ||
			!strings.Contains(err.Error(), "float32") {
			t.Errorf("value %v: %v, want an error naming the file, the tag and float32", x, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Scalars(1, now, []Scalar{{"a", 1}}); err == nil {
		t.Fatal("Scalars after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkRead(t, path, nil) // nothing refused was written
}
