package hf

import (
	"fmt"
	"sort"
	"strings"
)

// llama32Rope is the rope scaling every Llama-3.2 checkpoint ships with.
var llama32Rope = RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}

func llama32(hidden, inter, layers, heads, kvHeads, headDim int) Config {
	rope := llama32Rope
	return Config{
		HiddenSize: hidden, IntermediateSize: inter, NumLayers: layers, NumHeads: heads,
		NumKVHeads: kvHeads, HeadDim: headDim, VocabSize: 128256, RMSNormEps: 1e-5,
		RopeTheta: 500000, RopeScaling: &rope, TieWordEmbeddings: true, DType: BF16,
		MaxPositions: 131072, BOSTokenID: 128000, EOSTokenIDs: []int{128001},
	}
}

// Preset is a named model shape. Large presets write only config.json unless weights are asked for.
type Preset struct {
	Config         Config
	WeightsDefault bool
}

// presets are the named shapes of `bear init`: two small random models for tests and demos, and
// the real shapes of Llama-3.2 1B and 3B (from their published config.json files).
var presets = map[string]Preset{
	"tiny":         {llama32(64, 128, 2, 4, 2, 16), true},
	"small":        {llama32(256, 1024, 4, 8, 2, 32), true},
	"llama-3.2-1b": {llama32(2048, 8192, 16, 32, 8, 64), false},
	"llama-3.2-3b": {llama32(3072, 8192, 28, 24, 8, 128), false},
}

// LookupPreset returns the preset of that name, or an error listing the known ones.
func LookupPreset(name string) (Preset, error) {
	p, ok := presets[name]
	if !ok {
		names := make([]string, 0, len(presets))
		for n := range presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return Preset{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(names, ", "))
	}
	p.Config.EOSTokenIDs = append([]int(nil), p.Config.EOSTokenIDs...)
	rope := *p.Config.RopeScaling
	p.Config.RopeScaling = &rope
	return p, nil
}
