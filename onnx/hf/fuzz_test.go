package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/big"
	"os"
	"slices"
	"testing"
)

// safetensorsSeeds are real files (the committed adapters), a freshly encoded one, and broken
// ones: empty, a lying header length, offsets past the end, a shape whose byte count overflows.
func safetensorsSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, p := range []string{"../../testdata/forward/lora_q_v_adapter/adapter_model.safetensors",
		"../../testdata/train/adapters/bear/adapter_model.safetensors"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	var buf bytes.Buffer
	err := encodeSafetensors(&buf, []WriteTensor{
		Float32Tensor("a", BF16, []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		Float32Tensor("b", F32, nil, []float32{7}),
	}, map[string]string{"format": "pt"})
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, buf.Bytes())
	withHeader := func(js string, data int) []byte {
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
		return append(append(out, js...), make([]byte, data)...)
	}
	seeds = append(seeds, nil, []byte{1, 2, 3},
		binary.LittleEndian.AppendUint64(nil, 1<<62),
		binary.LittleEndian.AppendUint64(nil, ^uint64(0)),
		withHeader(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4),
		withHeader(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0),
		withHeader(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4),
		withHeader(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775807,4]}}`, 4),
		withHeader(`{"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`, 2))
	return seeds
}

// FuzzSafetensorsHeader: any bytes as a safetensors file give an error or tensors whose byte
// ranges lie inside the file and match their shapes, and a parsed file written back with the
// same tensors parses to the same names, dtypes, shapes, bytes and metadata.
func FuzzSafetensorsHeader(f *testing.F) {
	for _, s := range safetensorsSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := parseSafetensorsHeader(bytes.NewReader(data), int64(len(data)), "fuzz.safetensors")
		if err != nil {
			return
		}
		headerEnd := 8 + int64(binary.LittleEndian.Uint64(data))
		for name, ti := range ts {
			if ti.Name != name || ti.Offset < headerEnd || ti.Size < 0 || ti.Offset+ti.Size > int64(len(data)) {
				t.Fatalf("tensor %s: range [%d, +%d) outside the data section [%d, %d)", name, ti.Offset, ti.Size, headerEnd, len(data))
			}
			if shapeBytes(ti).Cmp(big.NewInt(ti.Size)) != 0 {
				t.Fatalf("tensor %s: shape %v of %s does not fill %d bytes", name, ti.Shape, ti.DType, ti.Size)
			}
		}
		checkRoundTrip(t, data, ts, meta)
	})
}

// checkRoundTrip re-encodes parsed tensors with their bytes and parses the result again.
func checkRoundTrip(t *testing.T, data []byte, ts map[string]TensorInfo, meta map[string]string) {
	var wts []WriteTensor
	for _, ti := range ts {
		raw := data[ti.Offset : ti.Offset+ti.Size]
		wts = append(wts, WriteTensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Fill: func(w io.Writer) error {
			_, err := w.Write(raw)
			return err
		}})
	}
	var buf bytes.Buffer
	if err := encodeSafetensors(&buf, wts, meta); err != nil {
		t.Fatalf("re-encoding a parsed file: %v", err)
	}
	back, meta2, err := parseSafetensorsHeader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "again.safetensors")
	if err != nil {
		t.Fatalf("re-encoded file does not parse: %v", err)
	}
	if len(back) != len(ts) || (len(meta) > 0 && !mapsEqual(meta, meta2)) {
		t.Fatalf("round trip: %d tensors and metadata %v, want %d and %v", len(back), meta2, len(ts), meta)
	}
	for name, a := range ts {
		b, ok := back[name]
		if !ok || a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) ||
			!bytes.Equal(data[a.Offset:a.Offset+a.Size], buf.Bytes()[b.Offset:b.Offset+b.Size]) {
			t.Fatalf("round trip changed tensor %s", name)
		}
	}
}

// shapeBytes is the byte count of a tensor's shape, computed without overflow.
func shapeBytes(ti TensorInfo) *big.Int {
	n := big.NewInt(int64(ti.DType.Size()))
	for _, d := range ti.Shape {
		n.Mul(n, big.NewInt(d))
	}
	return n
}

func mapsEqual(a, b map[string]string) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// FuzzParseConfig: any bytes as config.json give an error or a configuration whose sizes are
// positive, whose head_dim is even and whose heads group evenly, and which survives a round trip
// through Config.JSON.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"tiny", "small", "llama-3.2-1b"} {
		p, _ := LookupPreset(name)
		js, err := p.Config.JSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	var cases struct {
		Cases []struct {
			Config json.RawMessage `json:"config"`
		} `json:"cases"`
	}
	data, err := os.ReadFile("../../testdata/forward/cases.json")
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		f.Fatal(err)
	}
	for _, c := range cases.Cases {
		f.Add([]byte(c.Config))
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"hidden_size":60,"num_attention_heads":8}`,
		`{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"rope_scaling":{"rope_type":"llama3","factor":1e308,"low_freq_factor":1,"high_freq_factor":2,"original_max_position_embeddings":1}}`,
		`{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":0,"vocab_size":10}`,
		`{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"bos_token_id":-5,"eos_token_id":[-1,3]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumLayers <= 0 || c.VocabSize <= 0 ||
			c.NumHeads <= 0 || c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 || c.HeadDim <= 0 || c.HeadDim%2 != 0 {
			t.Fatalf("accepted an impossible shape: %+v", c)
		}
		js, err := c.JSON()
		if err != nil {
			t.Fatalf("JSON of a parsed config: %v", err)
		}
		back, err := ParseConfig(js)
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, js)
		}
		if a, b := fmtConfig(back), fmtConfig(c); a != b {
			t.Fatalf("round trip changed the config:\n%s\n%s", b, a)
		}
	})
}

func fmtConfig(c Config) string {
	js, _ := json.Marshal(c)
	return string(js)
}
