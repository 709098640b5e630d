package tfevents

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// pyEvent is one event as testdata/read_events.py prints it.
type pyEvent struct {
	Step         int64           `json:"step"`
	WallTime     json.RawMessage `json:"wall_time"`
	WallTimeBits string          `json:"wall_time_bits"`
	FileVersion  *string         `json:"file_version"`
	Values       []struct {
		Tag        string          `json:"tag"`
		PluginName string          `json:"plugin_name"`
		DataClass  string          `json:"data_class"`
		Dtype      string          `json:"dtype"`
		Value      json.RawMessage `json:"value"`
		Bits       string          `json:"bits"`
	} `json:"values"`
}

// readPython reads path with the independent reader: Debian's python3-protobuf and
// python3-crc32c, no code shared with this package.
func readPython(t *testing.T, path string) []pyEvent {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import google.protobuf, crc32c").CombinedOutput(); err != nil {
		t.Fatalf("the independent reader needs python3-protobuf and python3-crc32c: run `make deps-tfevents` (%v: %s)", err, out)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/read_events.py", path)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("read_events.py %s: %v\n%s", path, err, stderr)
	}
	var evs []pyEvent
	if err := json.Unmarshal(out, &evs); err != nil {
		t.Fatalf("read_events.py output: %v\n%s", err, out)
	}
	return evs
}

// pyFloat decodes a float as read_events.py prints it and checks it against its bit pattern.
func pyFloat(t *testing.T, raw json.RawMessage, bits string) float64 {
	t.Helper()
	u, err := strconv.ParseUint(bits, 16, 64)
	if err != nil {
		t.Fatalf("bits %q: %v", bits, err)
	}
	x := math.Float64frombits(u)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		want := map[string]bool{"nan": math.IsNaN(x), "inf": math.IsInf(x, 1), "-inf": math.IsInf(x, -1)}
		if !want[s] {
			t.Fatalf("value %s with bits %s", s, bits)
		}
		return x
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.Float64bits(f) != u {
		t.Fatalf("value %s (%v) is not bits %s", raw, err, bits)
	}
	return x
}

// checkPython checks that the independent reader sees the events written after the
// file_version event, each value as TensorBoard's scalar summaries hold it (a DT_FLOAT of the
// "scalars" plugin and class DATA_CLASS_SCALAR) and bit for bit as stored.
func checkPython(t *testing.T, path string, written []event) {
	t.Helper()
	got := readPython(t, path)
	if len(got) == 0 || got[0].FileVersion == nil || *got[0].FileVersion != "brain.Event:2" {
		t.Fatalf("python: first event %+v, want file_version brain.Event:2", got)
	}
	pyFloat(t, got[0].WallTime, got[0].WallTimeBits)
	got = got[1:]
	if len(got) != len(written) {
		t.Fatalf("python: %d scalar events, want %d", len(got), len(written))
	}
	for i, g := range got {
		w := written[i]
		wall := pyFloat(t, g.WallTime, g.WallTimeBits)
		if g.Step != w.Step || math.Float64bits(wall) != math.Float64bits(w.WallTime) || g.FileVersion != nil {
			t.Fatalf("python event %d: step %d wall %v, want step %d wall %v", i, g.Step, wall, w.Step, w.WallTime)
		}
		if len(g.Values) != len(w.Scalars) {
			t.Fatalf("python event %d: %d values, want %d", i, len(g.Values), len(w.Scalars))
		}
		for j, v := range g.Values {
			x := pyFloat(t, v.Value, v.Bits)
			ws := w.Scalars[j]
			want := stored(ws.Value)
			if v.Tag != ws.Tag || v.PluginName != "scalars" || v.DataClass != "DATA_CLASS_SCALAR" || v.Dtype != "DT_FLOAT" ||
				math.Float64bits(x) != math.Float64bits(want) {
				t.Fatalf("python event %d value %d: %+v = %v, want %q = %v (%016x, written %v) DT_FLOAT DATA_CLASS_SCALAR scalars",
					i, j, v, x, ws.Tag, want, math.Float64bits(want), ws.Value)
			}
		}
	}
}

// awkward are values and the float32 each is stored as (bit patterns worked out with Python's
// struct.pack("<f"), which rounds to nearest, ties to even, as TensorBoard's numpy does):
// rounding, ties, subnormals, underflow to ±0, the edge of float32's range, -0, ±Inf, NaNs.
var awkward = []struct {
	x      float64
	want32 uint32
}{
	{0, 0x00000000},
	{math.Copysign(0, -1), 0x80000000},
	{1e-300, 0x00000000},
	{-1e-300, 0x80000000},
	{5e-324, 0x00000000},
	{math.NaN(), 0x7fc00000},
	{math.Inf(1), 0x7f800000},
	{math.Inf(-1), 0xff800000},
	{0.1, 0x3dcccccd},
	{1.0 / 3, 0x3eaaaaab},
	{-2.5e10, 0xd0ba43b7},
	{math.Float64frombits(0x7ff8000000000123), 0x7fc00000}, // a NaN with a payload
	{math.Float64frombits(0xfff8000000000000), 0x7fc00000}, // a negative NaN
	{math.Float64frombits(0x7ff0000000000001), 0x7fc00000}, // a signaling NaN
	{math.MaxFloat32, 0x7f7fffff},
	{-math.MaxFloat32, 0xff7fffff},
	{math.Nextafter(math.MaxFloat32, math.Inf(1)), 0x7f7fffff}, // above it, rounds down
	{math.Nextafter(0x1p128-0x1p103, 0), 0x7f7fffff},           // just below the tie with 2^128
	{0x1p-149, 0x00000001},                                     // the least float32
	{0x1p-150, 0x00000000},                                     // tie between 0 and it: to even
	{math.Nextafter(0x1p-150, 1), 0x00000001},                  // past the tie
	{1 + 0x1p-24, 0x3f800000},                                  // tie: to even, down
	{1 + 3*0x1p-24, 0x3f800002},                                // tie: to even, up
	{16777217, 0x4b800000},                                     // 2^24+1
}

func TestStored(t *testing.T) {
	for _, a := range awkward {
		want := float64(math.Float32frombits(a.want32))
		if got := stored(a.x); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("stored(%v) = %v (%016x), want %v (float32 %08x)", a.x, got, math.Float64bits(got), want, a.want32)
		}
		if f, ok := toFloat32(a.x); !ok || math.Float32bits(f) != a.want32 {
			t.Errorf("toFloat32(%v) = %v (%08x), %v, want %08x", a.x, f, math.Float32bits(f), ok, a.want32)
		}
	}
}

// awkwardEvents are several steps (huge and negative ones included) of several tags, holding
// every awkward value.
func awkwardEvents() []event {
	steps := []int64{0, 1, 2, 1 << 40, math.MaxInt64, -1, math.MinInt64, 3, 4}
	var evs []event
	for i, s := range steps {
		ev := event{Step: s, WallTime: 1700000000.123456 + float64(i)}
		for j := range 3 {
			ev.Scalars = append(ev.Scalars, Scalar{
				Tag:   []string{"train/loss", "lr", "eval/ndcg@10 ü"}[j],
				Value: awkward[(i*3+j)%len(awkward)].x,
			})
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestPythonReaderAgrees(t *testing.T) {
	if n := len(awkwardEvents()) * 3; n < len(awkward) {
		t.Fatalf("awkwardEvents holds %d values, fewer than the %d awkward ones", n, len(awkward))
	}
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	written := awkwardEvents()
	writeEvents(t, path, 0, written)
	checkPython(t, path, written)
	checkRead(t, path, written)
}

func TestWallTimeSeconds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	w, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Unix(1700000000, 123456789) // nanoseconds below the microsecond are dropped
	if err := w.Scalars(3, wall, []Scalar{{"a", 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkPython(t, path, []event{{Step: 3, WallTime: 1700000000.123456, Scalars: []Scalar{{"a", 1}}}})
}
