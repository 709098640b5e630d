package peft

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// FuzzAdapterConfig: any bytes as adapter_config.json give an error or a spec that validates,
// with a positive rank, a sorted set of known target modules and a dropout in [0, 1), whose
// LoRA inputs for a model have the shapes the spec implies (each module's own rank), and which
// WriteAdapter's config reproduces, patterns and their order included.
func FuzzAdapterConfig(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/*/adapters/*/adapter_config.json")
	more, _ := filepath.Glob("../../testdata/forward/*/adapter_config.json")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{``, `{}`, `null`, `{"r":-1}`, `{"r":4,"target_modules":["q_proj","q_proj"]}`,
		`{"r":4,"target_modules":["q_proj"],"lora_dropout":0.999999}`, `{"r":1e9,"target_modules":["down_proj"]}`,
		`{"r":2,"target_modules":{"q_proj":1}}`, `{"r":2,"target_modules":[null]}`,
		`{"r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"],"rank_pattern":{"v_proj":4,"layers\\.1\\..*":2},"alpha_pattern":{"q_proj":64}}`,
		`{"r":8,"target_modules":["q_proj"],"rank_pattern":{"q_proj":4,"q_proj":2},"alpha_pattern":null}`,
		`{"r":8,"target_modules":["q_proj"],"alpha_pattern":{"(?=q)":1}}`} {
		f.Add([]byte(s))
	}
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, dropout, err := parseAdapterConfig(data)
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil || spec.Rank <= 0 || !(dropout >= 0 && dropout < 1) ||
			!slices.IsSorted(spec.Targets) || len(slices.Compact(slices.Clone(spec.Targets))) != len(spec.Targets) {
			t.Fatalf("accepted spec %+v dropout %g (%v)", spec, dropout, err)
		}
		if spec.Rank > 1<<16 {
			return // the shapes below would only be large, not different
		}
		for _, in := range spec.Inputs(cfg) {
			o, i := cfg.ModuleShape(in.Module)
			r := spec.ModuleRank(in.Layer, in.Module)
			if r <= 0 || (in.Which == "A" && (in.Rows != r || in.Cols != i)) || (in.Which == "B" && (in.Rows != o || in.Cols != r)) {
				t.Fatalf("input %s is %d×%d (module rank %d)", in.Name, in.Rows, in.Cols, r)
			}
		}
		checkConfigRoundTrip(t, spec, dropout)
	})
}

// checkConfigRoundTrip writes the spec as WriteAdapter does and parses it back.
func checkConfigRoundTrip(t *testing.T, spec llama.LoRASpec, dropout float64) {
	back, d2, err := parseAdapterConfig(adapterConfigJSON(&Adapter{Spec: spec, Dropout: dropout}, "base"))
	if err != nil || d2 != dropout || back.Rank != spec.Rank || back.Alpha != spec.Alpha ||
		back.RSLoRA != spec.RSLoRA || !slices.Equal(back.Targets, spec.Targets) ||
		!slices.Equal(back.RankPattern, spec.RankPattern) || !slices.Equal(back.AlphaPattern, spec.AlphaPattern) {
		t.Fatalf("round trip: %+v %g (%v), want %+v %g", back, d2, err, spec, dropout)
	}
}
