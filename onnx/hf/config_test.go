package hf

import (
	"math"
	"strings"
	"testing"
)

func TestParseConfigRopeSpellings(t *testing.T) {
	cases := []struct {
		name      string
		json      string
		theta     float64
		scaled    bool
		dtype     DType
		tied      bool
		kv, hd    int
		eos       []int
		wantError string
	}{
		{name: "rope_scaling (transformers 4.x)", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10,
			"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
			"tie_word_embeddings":true,"torch_dtype":"bfloat16","eos_token_id":128001}`,
			theta: 500000, scaled: true, dtype: BF16, tied: true, kv: 2, hd: 16, eos: []int{128001}},
		{name: "rope_parameters (transformers 5)", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,
			"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
			"dtype":"float32","eos_token_id":[128001,128009]}`,
			theta: 500000, scaled: true, dtype: F32, kv: 4, hd: 16, eos: []int{128001, 128009}},
		{name: "old type spelling and default rope", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,
			"rope_parameters":{"rope_type":"default","rope_theta":10000.0}}`, theta: 10000, dtype: F32, kv: 4, hd: 16},
		{name: "null rope scaling", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"rope_scaling":null,"head_dim":8}`,
			theta: 10000, dtype: F32, kv: 4, hd: 8},
		{name: "linear rope", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"rope_scaling":{"type":"linear","factor":2.0}}`,
			wantError: `rope_scaling: rope type "linear" is not supported`},
		{name: "llama3 without factors", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"rope_scaling":{"rope_type":"llama3"}}`,
			wantError: "llama3 needs factor"},
		{name: "not llama", json: `{"model_type":"mistral"}`, wantError: `model_type "mistral"`},
		{name: "biases", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"attention_bias":true}`, wantError: "attention_bias"},
		{name: "negative size", json: `{"hidden_size":-1,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10}`, wantError: "hidden_size = -1"},
		{name: "head_dim missing, hidden not divisible by heads", json: `{"hidden_size":60,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,"vocab_size":10}`,
			wantError: "head_dim is missing and hidden_size = 60 is not divisible by num_attention_heads = 8"},
		{name: "head_dim missing, odd quotient", json: `{"hidden_size":36,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10}`,
			wantError: "36 / 4 = 9 is odd"},
		{name: "head_dim given for indivisible sizes", json: `{"hidden_size":60,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,"vocab_size":10,"head_dim":8}`,
			theta: 10000, dtype: F32, kv: 8, hd: 8},
		{name: "head_dim odd", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"head_dim":7}`,
			wantError: "head_dim = 7, want a positive even number"},
		{name: "negative bos", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"bos_token_id":-5}`, wantError: "bos_token_id = -5"},
		{name: "bad eos", json: `{"hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"eos_token_id":"x"}`, wantError: "eos_token_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(c.json))
			if c.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantError) {
					t.Fatalf("error %v, want %q", err, c.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RopeTheta != c.theta || (cfg.RopeScaling != nil) != c.scaled || cfg.DType != c.dtype ||
				cfg.TieWordEmbeddings != c.tied || cfg.NumKVHeads != c.kv || cfg.HeadDim != c.hd || len(cfg.EOSTokenIDs) != len(c.eos) {
				t.Errorf("parsed %+v", cfg)
			}
			// Writing and reading back gives the same configuration.
			js, _ := cfg.JSON()
			back, err := ParseConfig(js)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := back.InvFreq(), cfg.InvFreq(); len(a) != len(b) || a[len(a)-1] != b[len(b)-1] || back.HeadDim != cfg.HeadDim {
				t.Errorf("round trip changed the rope or shape")
			}
		})
	}
}

// TestInvFreqLlama3 checks the three llama3 bands against the formula evaluated in float64:
// high frequencies unchanged, low ones divided by the factor, the middle band interpolated.
func TestInvFreqLlama3(t *testing.T) {
	p, _ := LookupPreset("llama-3.2-1b")
	inv := p.Config.InvFreq()
	s := p.Config.RopeScaling
	for i, got := range inv {
		f := math.Pow(p.Config.RopeTheta, -float64(2*i)/float64(p.Config.HeadDim))
		wl := 2 * math.Pi / f
		want := f
		switch {
		case wl < float64(s.OriginalMaxPositionEmbeddings)/s.HighFreqFactor:
		case wl > float64(s.OriginalMaxPositionEmbeddings)/s.LowFreqFactor:
			want = f / s.Factor
		default:
			sm := (float64(s.OriginalMaxPositionEmbeddings)/wl - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			want = (1-sm)*f/s.Factor + sm*f
		}
		if math.Abs(float64(got)-want) > 1e-6*want {
			t.Errorf("inv_freq[%d] = %g, want %g", i, got, want)
		}
	}
}

func TestHalfPrecisionConversions(t *testing.T) {
	for _, c := range []struct {
		bits uint16
		want float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Ldexp(1, -24))}, {0x0400, float32(math.Ldexp(1, -14))}, {0x7c00, float32(math.Inf(1))}, {0x8000, float32(math.Copysign(0, -1))}} {
		if got := f16ToFloat32(c.bits); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("F16 %#04x = %g, want %g", c.bits, got, c.want)
		}
	}
	// bf16: round to nearest, ties to even.
	for _, c := range []struct {
		in   uint32
		want uint16
	}{{0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81}, {0x7fc00001, 0x7fc0}} {
		if got := float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("bf16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}
