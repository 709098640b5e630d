package llama

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

// patternGolden is testdata/peft/patterns.json, written by tools/reference/peftpattern.py with
// Python's re and PEFT's get_pattern_key, so the expectations do not come from this package.
type patternGolden struct {
	Match []struct {
		Desc   string   `json:"desc"`
		Keys   []string `json:"keys"`
		Layer  int      `json:"layer"`
		Module string   `json:"module"`
		Name   string   `json:"name"`
		Match  *string  `json:"match"`
		Rank   int      `json:"rank"`
		Alpha  float64  `json:"alpha"`
	} `json:"match"`
}

// TestPatternMatchesPython: for every case of the golden file (bare module names, paths inside
// the layer, one layer's module, full names, layer regexes with and without escaped dots, a
// suffix without a dot boundary, alternation, a caret, order precedence, a key closing PEFT's
// group), ModuleName is PEFT's current_key, the first matching key is Python's, and ModuleRank
// and ModuleAlpha are what rank_pattern.get and alpha_pattern.get give (ranks 100+i and alphas
// 1000.5+i for the i-th key, r 8 and lora_alpha 16 otherwise).
func TestPatternMatchesPython(t *testing.T) {
	data, err := os.ReadFile("../../testdata/peft/patterns.json")
	if err != nil {
		t.Fatal(err)
	}
	var g patternGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Match) < 30 {
		t.Fatalf("%d golden cases, want at least 30", len(g.Match))
	}
	for _, c := range g.Match {
		spec := LoRASpec{Targets: []string{c.Module}, Rank: 8, Alpha: 16}
		for i, k := range c.Keys {
			spec.RankPattern = append(spec.RankPattern, RankPattern{Key: k, Rank: 100 + i})
			spec.AlphaPattern = append(spec.AlphaPattern, AlphaPattern{Key: k, Alpha: 1000.5 + float64(i)})
		}
		if err := spec.Validate(); err != nil {
			t.Errorf("%s: keys %q: %v", c.Desc, c.Keys, err)
			continue
		}
		if got := ModuleName(c.Layer, c.Module); got != c.Name {
			t.Errorf("ModuleName(%d, %s) = %s, want %s", c.Layer, c.Module, got, c.Name)
		}
		want := -1
		for i, k := range c.Keys {
			if c.Match != nil && k == *c.Match {
				want = i
			}
		}
		if got := firstMatch(spec.RankPattern, c.Name); got != want {
			t.Errorf("%s: keys %q on %s: key %d matches first, Python's re picks %d", c.Desc, c.Keys, c.Name, got, want)
		}
		if r, a := spec.ModuleRank(c.Layer, c.Module), spec.ModuleAlpha(c.Layer, c.Module); r != c.Rank || a != c.Alpha {
			t.Errorf("%s: keys %q on %s: r %d alpha %g, PEFT gives r %d alpha %g", c.Desc, c.Keys, c.Name, r, a, c.Rank, c.Alpha)
		}
	}
}

// TestPatternErrors: keys Go cannot match as PEFT does, non-positive ranks, non-finite alphas
// and repeated keys are refused, naming the field and the key.
func TestPatternErrors(t *testing.T) {
	base := LoRASpec{Targets: []string{"q_proj"}, Rank: 8, Alpha: 16}
	for _, c := range []struct {
		name       string
		rank       []RankPattern
		alpha      []AlphaPattern
		field, key string
	}{
		{"lookahead", []RankPattern{{`(?=q)q_proj`, 4}}, nil, "rank_pattern", `(?=q)q_proj`},
		{"lookbehind", nil, []AlphaPattern{{`(?<!k)q_proj`, 4}}, "alpha_pattern", `(?<!k)q_proj`},
		{"backreference", []RankPattern{{`(q)\1_proj`, 4}}, nil, "rank_pattern", `(q)\1_proj`},
		{"unbalanced", []RankPattern{{`q_proj)`, 4}}, nil, "rank_pattern", `q_proj)`},
		{"python {,n}", []RankPattern{{`q{,2}_proj`, 4}}, nil, "rank_pattern", `q{,2}_proj`},
		{"posix class", nil, []AlphaPattern{{`[[:alpha:]]_proj`, 4}}, "alpha_pattern", `[[:alpha:]]_proj`},
		{"zero rank", []RankPattern{{"q_proj", 0}}, nil, "rank_pattern", "q_proj"},
		{"negative rank", []RankPattern{{"v_proj", -2}}, nil, "rank_pattern", "v_proj"},
		{"NaN alpha", nil, []AlphaPattern{{"q_proj", math.NaN()}}, "alpha_pattern", "q_proj"},
		{"infinite alpha", nil, []AlphaPattern{{"k_proj", math.Inf(-1)}}, "alpha_pattern", "k_proj"},
		{"repeated key", []RankPattern{{"q_proj", 2}, {"v_proj", 2}, {"q_proj", 4}}, nil, "rank_pattern", "q_proj"},
	} {
		spec := base
		spec.RankPattern, spec.AlphaPattern = c.rank, c.alpha
		err := spec.Validate()
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range []string{c.field, `"` + strings.ReplaceAll(c.key, `\`, `\\`) + `"`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %s", c.name, err, w)
			}
		}
	}
	ok := base
	ok.RankPattern = []RankPattern{{`layers\.1\d*\..*`, 4}, {"(?P<m>v)_proj", 2}}
	ok.AlphaPattern = []AlphaPattern{{"q_proj", -3}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid patterns refused: %v", err)
	}
}

// TestModuleScaling: a module's scaling is its alpha over its rank (square root with
// use_rslora), each looked up in its own pattern list; unmatched modules keep alpha/r.
func TestModuleScaling(t *testing.T) {
	spec := LoRASpec{Targets: []string{"q_proj", "v_proj", "down_proj"}, Rank: 8, Alpha: 16,
		RankPattern:  []RankPattern{{"v_proj", 4}, {`layers\.1\..*`, 2}},
		AlphaPattern: []AlphaPattern{{"q_proj", 64}, {"model.layers.1.mlp.down_proj", 3}}}
	rs := spec
	rs.RSLoRA = true
	for _, c := range []struct {
		spec          LoRASpec
		layer         int
		module        string
		rank          int
		alpha, scaled float64
	}{
		{spec, 0, "q_proj", 8, 64, 8},
		{spec, 0, "v_proj", 4, 16, 4},
		{spec, 0, "down_proj", 8, 16, 2},
		{spec, 1, "v_proj", 4, 16, 4}, // v_proj comes first in rank_pattern
		{spec, 1, "q_proj", 2, 64, 32},
		{spec, 1, "down_proj", 2, 3, 1.5},
		{rs, 0, "q_proj", 8, 64, 64 / math.Sqrt(8)},
		{rs, 0, "v_proj", 4, 16, 8},
		{rs, 1, "down_proj", 2, 3, 3 / math.Sqrt(2)},
	} {
		r, a, s := c.spec.ModuleRank(c.layer, c.module), c.spec.ModuleAlpha(c.layer, c.module), c.spec.ModuleScaling(c.layer, c.module)
		if r != c.rank || a != c.alpha || math.Abs(s-c.scaled) > 1e-15 {
			t.Errorf("rslora %v layer %d %s: r %d alpha %g scaling %g, want %d %g %g", c.spec.RSLoRA, c.layer, c.module, r, a, s, c.rank, c.alpha, c.scaled)
		}
	}
	plain := LoRASpec{Targets: []string{"q_proj"}, Rank: 8, Alpha: 16}
	if plain.ModuleScaling(3, "q_proj") != plain.Scaling() || plain.ModuleScaling(3, "q_proj") != 2 {
		t.Errorf("without patterns: module scaling %g, spec scaling %g, want 2", plain.ModuleScaling(3, "q_proj"), plain.Scaling())
	}
}

// TestPerModuleRankInputs: Inputs and the exported graph give each module its own rank:
// A [r_m, in] and B [out, r_m].
func TestPerModuleRankInputs(t *testing.T) {
	ck := testCheckpoint(t, true)
	spec := &LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 8, Alpha: 16,
		RankPattern: []RankPattern{{"model.layers.1.self_attn.q_proj", 2}, {"v_proj", 4}}}
	want := map[string][2]int{}
	for l := range ck.Config.NumLayers {
		for _, m := range spec.Targets {
			r := 8
			if m == "v_proj" {
				r = 4
			} else if l == 1 {
				r = 2
			}
			o, i := ck.Config.ModuleShape(m)
			want[loRAInput(l, m, "A")], want[loRAInput(l, m, "B")] = [2]int{r, i}, [2]int{o, r}
		}
	}
	ins := spec.Inputs(ck.Config)
	if len(ins) != len(want) {
		t.Fatalf("%d inputs, want %d", len(ins), len(want))
	}
	for _, in := range ins {
		if w := want[in.Name]; in.Rows != w[0] || in.Cols != w[1] {
			t.Errorf("Inputs: %s is %d×%d, want %d×%d", in.Name, in.Rows, in.Cols, w[0], w[1])
		}
	}
	m := exportModel(t, ck, Options{LoRA: spec})
	seen := 0
	for _, vi := range m.Graph.Input {
		w, ok := want[vi.GetName()]
		if !ok {
			continue
		}
		seen++
		d := vi.GetType().GetTensorType().GetShape().GetDim()
		if len(d) != 2 || d[0].GetDimValue() != int64(w[0]) || d[1].GetDimValue() != int64(w[1]) {
			t.Errorf("graph input %s has shape %v, want %v", vi.GetName(), d, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d LoRA graph inputs, want %d", seen, len(want))
	}
}
