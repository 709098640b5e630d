package hf

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tinyConfig() Config {
	rope := RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	return Config{HiddenSize: 16, IntermediateSize: 24, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 4,
		VocabSize: 50, RMSNormEps: 1e-5, RopeTheta: 500000, RopeScaling: &rope, TieWordEmbeddings: true,
		DType: BF16, MaxPositions: 128, BOSTokenID: 1, EOSTokenIDs: []int{2}}
}

func writeTiny(t *testing.T, opt InitOptions) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteRandom(dir, tinyConfig(), opt); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rewriteHeader replaces the JSON header of a safetensors file, keeping its data section.
func rewriteHeader(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var hdr map[string]any
	if err := json.Unmarshal(data[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	edit(hdr)
	js, _ := json.Marshal(hdr)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	out = append(append(out, js...), data[8+n:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRoundTrip(t *testing.T) {
	for _, dt := range []DType{BF16, F32} {
		for _, shard := range []int64{0, 3000} {
			dir := writeTiny(t, InitOptions{Seed: 3, DType: dt, ShardBytes: shard})
			ck, err := Open(dir)
			if err != nil {
				t.Fatalf("%s shard %d: %v", dt, shard, err)
			}
			if ck.StorageDType() != dt || ck.Config.DType != dt {
				t.Errorf("storage dtype %s / config %s, want %s", ck.StorageDType(), ck.Config.DType, dt)
			}
			if want := len(tinyConfig().ExpectedWeights()); len(ck.Weights) != want {
				t.Errorf("%d weights, want %d", len(ck.Weights), want)
			}
			if shard > 0 && len(ck.Files) < 2 {
				t.Errorf("sharded checkpoint has %d files", len(ck.Files))
			}
		}
	}
}

// TestSameSeedSameValues: bf16 storage is the float32 draw rounded to nearest even, and the
// random values depend only on (seed, tensor name), not on the shard layout.
func TestSameSeedSameValues(t *testing.T) {
	a, err := Open(writeTiny(t, InitOptions{Seed: 5, DType: F32}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(writeTiny(t, InitOptions{Seed: 5, DType: BF16, ShardBytes: 2000}))
	if err != nil {
		t.Fatal(err)
	}
	for name, ta := range a.Weights {
		va, err := ta.ReadFloat32()
		if err != nil {
			t.Fatal(err)
		}
		vb, err := b.Weights[name].ReadFloat32()
		if err != nil {
			t.Fatal(err)
		}
		for i := range va {
			if want := bF16ToFloat32(float32ToBF16(va[i])); vb[i] != want {
				t.Fatalf("%s[%d]: bf16 %g, want round(%g) = %g", name, i, vb[i], va[i], want)
			}
		}
	}
}

// TestMalformedCheckpoints: every bad input gets its own error naming the file and, where it
// applies, the tensor; none panics.
func TestMalformedCheckpoints(t *testing.T) {
	q := LayerWeight(1, "self_attn.q_proj")
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"missing tensor", func(t *testing.T, dir string) {
			rewriteHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]any) { delete(h, q) })
		}, []string{"model.safetensors", q, "is missing"}},
		{"wrong shape", func(t *testing.T, dir string) {
			rewriteHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]any) {
				e := h[q].(map[string]any)
				e["shape"] = []int{8, 32} // same bytes, other shape
			})
		}, []string{"model.safetensors", q, "shape [8 32]", "implies [16 16]"}},
		{"truncated file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-100); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors", "truncated", "tensor"}},
		{"unknown dtype", func(t *testing.T, dir string) {
			rewriteHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]any) {
				h[q].(map[string]any)["dtype"] = "F8_E4M3"
			})
		}, []string{"model.safetensors", q, `unknown dtype "F8_E4M3"`}},
		{"malformed header", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			copy(data[8:], []byte("{not json"))
			os.WriteFile(p, data, 0o644)
		}, []string{"model.safetensors", "malformed header"}},
		{"header length past the end", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(data, 1<<40)
			os.WriteFile(p, data, 0o644)
		}, []string{"model.safetensors", "malformed header", "does not fit"}},
		{"empty file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "model.safetensors"), nil, 0o644)
		}, []string{"model.safetensors", "truncated"}},
		{"inconsistent data_offsets", func(t *testing.T, dir string) {
			rewriteHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]any) {
				h[q].(map[string]any)["data_offsets"] = []int{0, 12}
			})
		}, []string{"model.safetensors", q, "needs 512 bytes"}},
		{"integer weight", func(t *testing.T, dir string) {
			rewriteHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]any) {
				e := h[q].(map[string]any)
				e["dtype"] = "I32"
				e["shape"] = []int{8, 16}
			})
		}, []string{q, "floating-point"}},
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, []string{"no model.safetensors"}},
		{"config missing field", func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { delete(m, "hidden_size") })
		}, []string{"config.json", "hidden_size is missing"}},
		{"config unknown rope type", func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4.0} })
		}, []string{"config.json", "rope_scaling", `"yarn"`}},
		{"config unknown dtype", func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { m["torch_dtype"] = "int4" })
		}, []string{"config.json", "torch_dtype", `"int4"`}},
		{"config bad kv heads", func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { m["num_key_value_heads"] = 3 })
		}, []string{"config.json", "num_key_value_heads"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTiny(t, InitOptions{Seed: 1, DType: BF16})
			c.break_(t, dir)
			_, err := Open(dir)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestShardIndexErrors(t *testing.T) {
	dir := writeTiny(t, InitOptions{Seed: 1, DType: BF16, ShardBytes: 3000})
	p := filepath.Join(dir, "model.safetensors.index.json")
	var idx map[string]any
	data, _ := os.ReadFile(p)
	json.Unmarshal(data, &idx)
	wm := idx["weight_map"].(map[string]any)
	wm[FinalNormName] = wm[EmbedName] // a shard that does not hold it
	data, _ = json.Marshal(idx)
	os.WriteFile(p, data, 0o644)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), FinalNormName) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error %v, want one naming %s as missing from its shard", err, FinalNormName)
	}
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	data, _ := os.ReadFile(p)
	var m map[string]any
	json.Unmarshal(data, &m)
	edit(m)
	data, _ = json.Marshal(m)
	os.WriteFile(p, data, 0o644)
}

// TestSingleFileBeatsStaleIndex: a folder holding model.safetensors and, left over from an
// earlier sharded save, an index and its shards is read from model.safetensors, as transformers
// reads it.
func TestSingleFileBeatsStaleIndex(t *testing.T) {
	dir := writeTiny(t, InitOptions{Seed: 1, DType: BF16, ShardBytes: 3000})
	fresh := writeTiny(t, InitOptions{Seed: 2, DType: BF16})
	data, err := os.ReadFile(filepath.Join(fresh, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(single, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ck.Files) != 1 || ck.Files[0] != single {
		t.Fatalf("read %v, want only %s", ck.Files, single)
	}
	want, err := Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ck.Weights[EmbedName].ReadFloat32()
	ref, _ := want.Weights[EmbedName].ReadFloat32()
	if !slices.Equal(got, ref) {
		t.Error("embedding values are not those of model.safetensors")
	}
}
