package peft

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// TestParseAdapterConfigPatternErrors: a rank that is not a positive integer, an alpha that is
// not a finite number, a key Go cannot match as PEFT does and a pattern field that is not an
// object are refused, each naming the field and the key.
func TestParseAdapterConfigPatternErrors(t *testing.T) {
	for _, c := range []struct {
		name, fields string
		want         []string // besides the field, which the case's fields start with
	}{
		{"fractional rank", `"rank_pattern":{"q_proj":4.5}`, []string{`["q_proj"]`, "4.5", "positive integer"}},
		{"float-typed rank", `"rank_pattern":{"v_proj":4e0}`, []string{`["v_proj"]`, "positive integer"}},
		{"string rank", `"rank_pattern":{"v_proj":"4"}`, []string{`["v_proj"]`, "want a number"}},
		{"zero rank", `"rank_pattern":{"q_proj":0}`, []string{`["q_proj"]`, "= 0"}},
		{"negative rank", `"rank_pattern":{"layers\\.1\\..*":-4}`, []string{`["layers\\.1\\..*"]`, "-4"}},
		{"huge rank", `"rank_pattern":{"q_proj":99999999999999999999}`, []string{`["q_proj"]`, "positive integer"}},
		{"NaN alpha", `"alpha_pattern":{"v_proj":2,"q_proj":NaN}`, []string{`["q_proj"]`, "finite"}},
		{"Infinity alpha", `"alpha_pattern":{"q_proj":-Infinity}`, []string{`["q_proj"]`, "finite"}},
		{"overflowing alpha", `"alpha_pattern":{"q_proj":1e999}`, []string{`["q_proj"]`, "1e999", "finite"}},
		{"null alpha", `"alpha_pattern":{"q_proj":null}`, []string{`["q_proj"]`, "want a number"}},
		{"not an object", `"alpha_pattern":["q_proj"]`, []string{"want an object"}},
		{"lookahead key", `"rank_pattern":{"(?=q)q_proj":4}`, []string{`"(?=q)q_proj"`, "RE2"}},
		{"backreference key", `"alpha_pattern":{"(q)\\1_proj":4}`, []string{`"(q)\\1_proj"`, "RE2"}},
		{"python-only quantifier", `"rank_pattern":{"q{,1}_proj":4}`, []string{`"q{,1}_proj"`, "Python"}},
	} {
		data := fmt.Sprintf(`{"r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"],%s}`, c.fields)
		_, _, err := parseAdapterConfig([]byte(data))
		if err == nil {
			t.Errorf("%s: %s accepted", c.name, data)
			continue
		}
		field := c.fields[1 : strings.Index(c.fields[1:], `"`)+1]
		for _, w := range append([]string{field}, c.want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %s", c.name, err, w)
			}
		}
	}
}

// TestReadAdapterPatternErrorNamesFile: read from a folder, the error names adapter_config.json
// as well as the field and the key.
func TestReadAdapterPatternErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"r":8,"lora_alpha":16,"target_modules":["q_proj"],"alpha_pattern":{"(?<=self_attn\\.)q_proj":64}}`
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadAdapter(dir, tinyConfig(t))
	for _, w := range []string{"adapter_config.json", "alpha_pattern", `"(?<=self_attn\\.)q_proj"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %s", err, w)
		}
	}
}

// TestParsePatternOrderMatchesPython: rank_pattern comes out in the order json.loads gives it
// (testdata/peft/patterns.json, written by tools/reference/peftpattern.py): file order, a
// repeated key in its first place with its last value, a repeated field's last object.
func TestParsePatternOrderMatchesPython(t *testing.T) {
	data, err := os.ReadFile("../../testdata/peft/patterns.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Parse []struct {
			JSON        string               `json:"json"`
			RankPattern [][2]json.RawMessage `json:"rank_pattern"`
		} `json:"parse"`
	}
	if err := json.Unmarshal(data, &g); err != nil || len(g.Parse) < 3 {
		t.Fatalf("golden parse cases: %d (%v)", len(g.Parse), err)
	}
	for _, c := range g.Parse {
		var want []llama.RankPattern
		for _, kv := range c.RankPattern {
			var p llama.RankPattern
			if json.Unmarshal(kv[0], &p.Key) != nil || json.Unmarshal(kv[1], &p.Rank) != nil {
				t.Fatalf("golden entry %s", kv)
			}
			want = append(want, p)
		}
		got, err := readPatterns([]byte(c.JSON))
		if err != nil || !slices.Equal(got.rank, want) {
			t.Errorf("%s: rank_pattern %v (%v), json.loads gives %v", c.JSON, got.rank, err, want)
		}
	}
}

// patternConfig is an adapter_config.json whose patterns are out of sorted order, so that
// anything that sorts or maps them shows.
const patternConfig = `{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["v_proj","q_proj"],
 "rank_pattern":{"v_proj":4,"layers\\.1\\..*":2,"model.layers.0.self_attn.q_proj":6},
 "alpha_pattern":{"q_proj":64,"layers\\.0\\..*":3.5}}`

var patternSpec = llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16,
	RankPattern:  []llama.RankPattern{{Key: "v_proj", Rank: 4}, {Key: `layers\.1\..*`, Rank: 2}, {Key: "model.layers.0.self_attn.q_proj", Rank: 6}},
	AlphaPattern: []llama.AlphaPattern{{Key: "q_proj", Alpha: 64}, {Key: `layers\.0\..*`, Alpha: 3.5}}}

// writeAdapterFiles writes config as adapter_config.json and, for each LoRA input of spec,
// distinct values in PEFT's layout: a folder as PEFT would leave it, written without WriteAdapter.
func writeAdapterFiles(t *testing.T, cfg hf.Config, config string, spec llama.LoRASpec) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []hf.WriteTensor
	for k, in := range spec.Inputs(cfg) {
		vals := make([]float32, in.Rows*in.Cols)
		for i := range vals {
			vals[i] = float32(k) + float32(i)/1024
		}
		ts = append(ts, hf.Float32Tensor(Key(in.Layer, in.Module, in.Which), hf.F32, []int64{int64(in.Rows), int64(in.Cols)}, vals))
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAdapterPatternRoundTrip: ReadAdapter, WriteAdapter, ReadAdapter keeps the patterns in the
// file's order (written in that order too) and every matrix at its module's rank; an adapter
// without patterns writes them as {} as PEFT does.
func TestAdapterPatternRoundTrip(t *testing.T) {
	cfg := tinyConfig(t)
	first, err := ReadAdapter(writeAdapterFiles(t, cfg, patternConfig, patternSpec), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.Spec, patternSpec) {
		t.Fatalf("read spec %+v, want %+v", first.Spec, patternSpec)
	}
	out := t.TempDir()
	if err := WriteAdapter(out, first, cfg, "base"); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(out, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, entries := range [][]string{
		{`"rank_pattern": {`, `"v_proj": 4,`, `"layers\\.1\\..*": 2,`, `"model.layers.0.self_attn.q_proj": 6`, `}`},
		{`"alpha_pattern": {`, `"q_proj": 64,`, `"layers\\.0\\..*": 3.5`, `}`},
	} {
		at := 0
		for _, e := range entries {
			i := strings.Index(string(text[at:]), e)
			if i < 0 {
				t.Errorf("written config: no %s after %s:\n%s", e, entries[0], text)
				break
			}
			at += i + len(e)
		}
	}
	second, err := ReadAdapter(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second.Spec, first.Spec) || !reflect.DeepEqual(second.Weights, first.Weights) {
		t.Errorf("second read: spec %+v, want %+v (or the weights changed)", second.Spec, first.Spec)
	}
	plain := &Adapter{Spec: llama.LoRASpec{Targets: []string{"q_proj"}, Rank: 2, Alpha: 4}}
	text = adapterConfigJSON(plain, "base")
	for _, w := range []string{`"rank_pattern": {}`, `"alpha_pattern": {}`} {
		if !strings.Contains(string(text), w) {
			t.Errorf("config without patterns lacks %s:\n%s", w, text)
		}
	}
}

// TestReadAdapterPatternShapes: a module's matrices must have its own rank: the files of an
// adapter without the rank_pattern are refused under a config that has it, naming the tensor.
func TestReadAdapterPatternShapes(t *testing.T) {
	cfg := tinyConfig(t)
	flat := patternSpec
	flat.RankPattern = nil
	_, err := ReadAdapter(writeAdapterFiles(t, cfg, patternConfig, flat), cfg)
	if err == nil || !strings.Contains(err.Error(), "self_attn.q_proj.lora_A.weight: shape [8 64], want [6 64]") {
		t.Errorf("rank-8 q_proj of layer 0 under rank_pattern 6: %v", err)
	}
}

// TestMatchesComparesPatterns: an adapter matches a graph only with the same patterns in the
// same order (the order decides which key wins).
func TestMatchesComparesPatterns(t *testing.T) {
	a := &Adapter{Spec: patternSpec}
	swapped := patternSpec
	swapped.RankPattern = slices.Clone(patternSpec.RankPattern)
	swapped.RankPattern[0], swapped.RankPattern[1] = swapped.RankPattern[1], swapped.RankPattern[0]
	otherAlpha := patternSpec
	otherAlpha.AlphaPattern = []llama.AlphaPattern{{Key: "q_proj", Alpha: 32}, {Key: `layers\.0\..*`, Alpha: 3.5}}
	none := patternSpec
	none.RankPattern, none.AlphaPattern = nil, nil
	for _, c := range []struct {
		name  string
		graph llama.LoRASpec
		ok    bool
	}{
		{"same", patternSpec, true},
		{"rank keys reordered", swapped, false},
		{"another alpha", otherAlpha, false},
		{"no patterns", none, false},
	} {
		err := a.Matches(c.graph)
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "rank_pattern")) {
			t.Errorf("%s: %v, want match %v", c.name, err, c.ok)
		}
	}
}
