package tfevents

import (
	"bytes"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestValueBytes pins the bytes of one Summary.Value, worked out by hand from TensorBoard's
// published protos (and checked once against python3-protobuf's serialization of the same
// message): what a protobuf serializer writes for TensorBoard's own scalar summary, plus
// data_class. Parsers accept float_val packed or not, so only this test sees which is written.
func TestValueBytes(t *testing.T) {
	want := "0a0161" + // tag = 1: "a"
		"420a" + // tensor = 8, 10 bytes:
		"0801" + //   dtype = 1: DT_FLOAT (1)
		"1200" + //   tensor_shape = 2: empty, rank 0
		"2a040000c03f" + //   float_val = 5, packed: 1.5f (0x3fc00000, little-endian)
		"4a0d" + // metadata = 9, 13 bytes:
		"0a090a077363616c617273" + //   plugin_data = 1 { plugin_name = 1: "scalars" }
		"2001" //   data_class = 4: DATA_CLASS_SCALAR (1)
	if got := hex.EncodeToString(scalarValue(Scalar{"a", 1.5})); got != want {
		t.Fatalf("scalarValue = %s\nwant          %s", got, want)
	}
}

// Protobuf fields built with the field numbers of TensorBoard's published protos written out,
// not the package's constants, as another writer would build them.
func lenField(num protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Join(parts, nil))
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func fixed32Field(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func fixed64Field(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func le32(v uint32) []byte { return protowire.AppendFixed32(nil, v) }
func le64(v uint64) []byte { return protowire.AppendFixed64(nil, v) }

// tensorOf is a TensorProto of dtype (field 1) and rank 0 (an empty tensor_shape, field 2).
func tensorOf(dtype uint64, fields ...[]byte) []byte {
	return lenField(8, append([][]byte{varintField(1, dtype), lenField(2)}, fields...)...) // Summary.Value.tensor = 8
}

// eventFile is an event file of the file_version event and one event per value (a Summary.Value
// body after its tag "v"), of steps 1, 2, ...
func eventFile(t *testing.T, values ...[]byte) string {
	t.Helper()
	b := appendRecord(nil, fileVersionEvent(1700000000))
	for i, v := range values {
		value := append(lenField(1, []byte("v")), v...)                // Summary.Value.tag = 1
		ev := fixed64Field(1, math.Float64bits(1700000000+float64(i))) // Event.wall_time = 1
		ev = append(ev, varintField(2, uint64(i+1))...)                // Event.step = 2
		ev = append(ev, lenField(5, lenField(1, value))...)            // Event.summary = 5 { value = 1 }
		b = appendRecord(b, ev)
	}
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadOtherWriters checks that Read takes the scalars of other writers and of this
// package's first version, a float32 widened exactly and a float64 as it is.
func TestReadOtherWriters(t *testing.T) {
	const dtFloat, dtDouble = 1, 2 // types.proto
	f32 := func(bits uint32) float64 { return float64(math.Float32frombits(bits)) }
	cases := []struct {
		name  string
		value []byte
		want  float64
	}{
		{"simple_value", fixed32Field(2, 0x3dcccccd), f32(0x3dcccccd)},
		{"DT_DOUBLE, packed double_val (this package's first version)",
			tensorOf(dtDouble, lenField(6, le64(math.Float64bits(1.0/3)))), 1.0 / 3},
		{"DT_DOUBLE, unpacked double_val", tensorOf(dtDouble, fixed64Field(6, math.Float64bits(5e-324))), 5e-324},
		{"DT_DOUBLE, tensor_content", tensorOf(dtDouble, lenField(4, le64(math.Float64bits(0.1)))), 0.1},
		{"DT_FLOAT, unpacked float_val", tensorOf(dtFloat, fixed32Field(5, 0x3eaaaaab)), f32(0x3eaaaaab)},
		{"DT_FLOAT, tensor_content", tensorOf(dtFloat, lenField(4, le32(0xd0ba43b7))), f32(0xd0ba43b7)},
		{"DT_FLOAT, -0", tensorOf(dtFloat, lenField(5, le32(0x80000000))), math.Copysign(0, -1)},
		{"DT_FLOAT, no tensor_shape", lenField(8, varintField(1, dtFloat), lenField(5, le32(0x7f800000))), math.Inf(1)},
		{"unknown fields", append(lenField(7, []byte("node")), // Summary.Value.node_name = 7
			tensorOf(dtFloat, varintField(3, 7), lenField(5, le32(0x3f800000)))...), 1}, // version_number = 3
	}
	var values [][]byte
	var want []event
	for i, c := range cases {
		values = append(values, c.value)
		want = append(want, event{Step: int64(i + 1), WallTime: 1700000000 + float64(i), Scalars: []Scalar{{"v", c.want}}})
	}
	path := eventFile(t, values...)
	got, err := readEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if i < len(got) && len(got[i].Scalars) == 1 {
			if x := got[i].Scalars[0].Value; math.Float64bits(x) != math.Float64bits(c.want) {
				t.Errorf("%s: %v (%016x), want %v (%016x)", c.name, x, math.Float64bits(x), c.want, math.Float64bits(c.want))
			}
		}
	}
	checkReadExact(t, path, want)
}

// TestReadNotScalar checks that a value Read cannot take as one scalar is an error naming it.
func TestReadNotScalar(t *testing.T) {
	const dtFloat, dtDouble, dtInt32 = 1, 2, 3 // types.proto
	one := lenField(5, le32(0x3f800000))
	for _, c := range []struct {
		name, want string
		value      []byte
	}{
		{"DT_INT32", "dtype 3", tensorOf(dtInt32, lenField(7, []byte{1}))},
		{"no dtype", "dtype 0", lenField(8, lenField(2), one)},
		{"rank 1", "rank 0", lenField(8, varintField(1, dtFloat), lenField(2, lenField(2, varintField(1, 1))), one)},
		{"unknown rank", "rank 0", lenField(8, varintField(1, dtFloat), lenField(2, varintField(3, 1)), one)},
		{"two float_val", "2 values", tensorOf(dtFloat, lenField(5, le32(1), le32(2)))},
		{"no float_val", "0 values", tensorOf(dtFloat)},
		{"DT_FLOAT holding a double_val", "0 values", tensorOf(dtFloat, fixed64Field(6, 0))},
		{"DT_DOUBLE holding a float_val", "0 values", tensorOf(dtDouble, one)},
		{"float_val of 5 bytes", "not a whole number", tensorOf(dtFloat, lenField(5, []byte{1, 2, 3, 4, 5}))},
		{"tensor_content of 8 bytes for DT_FLOAT", "2 values", tensorOf(dtFloat, lenField(4, le64(0)))},
		{"float_val and tensor_content", "both", tensorOf(dtFloat, one, lenField(4, le32(0)))},
		{"no value", "no simple_value or tensor", lenField(9, lenField(1, lenField(1, []byte("scalars"))))},
		{"histogram", "no simple_value or tensor", lenField(5, fixed64Field(1, 0))},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := eventFile(t, c.value)
			_, err := readEvents(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `value "v"`) ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read: %v, want an error naming the file, value \"v\" and %q", err, c.want)
			}
		})
	}
}

// TestResumeFirstVersionFile resumes a file that this package's first version wrote (DT_DOUBLE
// tensors): its kept records stay byte for byte, and Read gives their float64 values exactly
// beside the float32 ones written after them.
func TestResumeFirstVersionFile(t *testing.T) {
	firstVersionValue := func(tag string, x float64) []byte {
		plugin := lenField(1, lenField(1, []byte("scalars"))) // plugin_data = 1 { plugin_name = 1 }
		// Summary.value = 1 { tag = 1, metadata = 9, tensor = 8 { DT_DOUBLE, double_val = 6 } }
		return lenField(1, lenField(1, []byte(tag)), lenField(9, plugin), tensorOf(2, lenField(6, le64(math.Float64bits(x)))))
	}
	old := stepEvents(1, 3)
	b := appendRecord(nil, fileVersionEvent(1700000000))
	for _, ev := range old {
		e := fixed64Field(1, math.Float64bits(ev.WallTime))
		e = append(e, varintField(2, uint64(ev.Step))...)
		var summary []byte
		for _, s := range ev.Scalars {
			summary = append(summary, firstVersionValue(s.Tag, s.Value)...)
		}
		b = appendRecord(b, append(e, lenField(5, summary)...))
	}
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	checkReadExact(t, path, old)
	starts := recordStarts(t, b)

	writeEvents(t, path, 2, stepEvents(3, 4)) // resumed from the checkpoint of step 2
	if after := readFile(t, path); !bytes.Equal(after[:starts[3]], b[:starts[3]]) {
		t.Fatal("resume changed the kept records of the first version")
	}
	checkReadExact(t, path, append(old[:2:2], storedEvents(stepEvents(3, 4))...))
}
