package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the part of a Llama config.json that fixes the forward pass.
type Config struct {
	HiddenSize        int
	IntermediateSize  int
	NumLayers         int
	NumHeads          int
	NumKVHeads        int
	HeadDim           int
	VocabSize         int
	RMSNormEps        float64
	RopeTheta         float64
	RopeScaling       *RopeScaling // nil: plain RoPE
	TieWordEmbeddings bool
	DType             DType // torch_dtype / dtype: the dtype the weights are stored in
	MaxPositions      int
	BOSTokenID        int
	EOSTokenIDs       []int
}

// RopeScaling is the llama3 frequency scaling of Llama 3.1 and later.
type RopeScaling struct {
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings int
}

// rawConfig mirrors config.json; pointers tell absent fields from zero ones.
type rawConfig struct {
	ModelType         string          `json:"model_type"`
	HiddenSize        *int            `json:"hidden_size"`
	IntermediateSize  *int            `json:"intermediate_size"`
	NumLayers         *int            `json:"num_hidden_layers"`
	NumHeads          *int            `json:"num_attention_heads"`
	NumKVHeads        *int            `json:"num_key_value_heads"`
	HeadDim           *int            `json:"head_dim"`
	VocabSize         *int            `json:"vocab_size"`
	RMSNormEps        *float64        `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	TorchDType        string          `json:"torch_dtype"`
	DType             string          `json:"dtype"`
	HiddenAct         string          `json:"hidden_act"`
	AttentionBias     bool            `json:"attention_bias"`
	MLPBias           bool            `json:"mlp_bias"`
	MaxPositions      int             `json:"max_position_embeddings"`
	BOSTokenID        *int            `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
}

type rawRope struct {
	RopeType                      string   `json:"rope_type"`
	Type                          string   `json:"type"` // older spelling of rope_type
	RopeTheta                     *float64 `json:"rope_theta"`
	Factor                        *float64 `json:"factor"`
	LowFreqFactor                 *float64 `json:"low_freq_factor"`
	HighFreqFactor                *float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings *int     `json:"original_max_position_embeddings"`
}

// ReadConfig reads and validates dir/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates the bytes of a config.json.
func ParseConfig(data []byte) (Config, error) {
	var r rawConfig
	if err := json.Unmarshal(data, &r); err != nil {
		return Config{}, fmt.Errorf("malformed JSON: %w", err)
	}
	if err := r.checkSupported(); err != nil {
		return Config{}, err
	}
	var c Config
	steps := []func(*Config) error{r.sizes, r.heads, r.norm, r.rope, r.weights, r.specialTokens}
	for _, step := range steps {
		if err := step(&c); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// checkSupported rejects architectures other than a bias-free SiLU Llama.
func (r *rawConfig) checkSupported() error {
	if r.ModelType != "" && r.ModelType != "llama" {
		return fmt.Errorf("model_type %q: only llama is supported", r.ModelType)
	}
	if r.HiddenAct != "" && r.HiddenAct != "silu" {
		return fmt.Errorf("hidden_act %q: only silu is supported", r.HiddenAct)
	}
	if r.AttentionBias || r.MLPBias {
		return fmt.Errorf("attention_bias/mlp_bias: biases are not supported (Llama-3.2 has none)")
	}
	return nil
}

// sizes copies the required positive sizes.
func (r *rawConfig) sizes(c *Config) error {
	need := []struct {
		name string
		src  *int
		dst  *int
	}{
		{"hidden_size", r.HiddenSize, &c.HiddenSize},
		{"intermediate_size", r.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", r.NumLayers, &c.NumLayers},
		{"num_attention_heads", r.NumHeads, &c.NumHeads},
		{"vocab_size", r.VocabSize, &c.VocabSize},
	}
	for _, f := range need {
		if f.src == nil {
			return fmt.Errorf("field %s is missing", f.name)
		}
		if *f.src <= 0 {
			return fmt.Errorf("field %s = %d, want > 0", f.name, *f.src)
		}
		*f.dst = *f.src
	}
	return nil
}

// heads sets the key/value head count (default: one per query head, as without GQA) and
// head_dim (default hidden_size / num_attention_heads; even, for the half-split RoPE).
func (r *rawConfig) heads(c *Config) error {
	c.NumKVHeads = c.NumHeads
	if r.NumKVHeads != nil {
		c.NumKVHeads = *r.NumKVHeads
	}
	if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("field num_key_value_heads = %d must be > 0 and divide num_attention_heads = %d", c.NumKVHeads, c.NumHeads)
	}
	if r.HeadDim == nil {
		if c.HiddenSize%c.NumHeads != 0 {
			return fmt.Errorf("field head_dim is missing and hidden_size = %d is not divisible by num_attention_heads = %d, "+
				"so it has no default: set head_dim (a positive even number) in config.json, or fix those two fields", c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
		if c.HeadDim%2 != 0 {
			return fmt.Errorf("head_dim = hidden_size / num_attention_heads = %d / %d = %d is odd, want a positive even number "+
				"(rotary embeddings rotate pairs): set head_dim in config.json, or fix those two fields", c.HiddenSize, c.NumHeads, c.HeadDim)
		}
	} else {
		c.HeadDim = *r.HeadDim
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return fmt.Errorf("field head_dim = %d, want a positive even number", c.HeadDim)
	}
	return nil
}

// norm sets rms_norm_eps (transformers' LlamaConfig default 1e-6).
func (r *rawConfig) norm(c *Config) error {
	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		c.RMSNormEps = *r.RMSNormEps
	}
	if !(c.RMSNormEps > 0) {
		return fmt.Errorf("field rms_norm_eps = %g, want > 0", c.RMSNormEps)
	}
	return nil
}

// rope sets rope_theta (transformers' default 10000), the llama3 scaling and
// max_position_embeddings. Newer transformers write rope_parameters (theta inside it);
// older ones rope_scaling.
func (r *rawConfig) rope(c *Config) error {
	c.MaxPositions = r.MaxPositions
	c.RopeTheta = 10000
	if r.RopeTheta != nil {
		c.RopeTheta = *r.RopeTheta
	}
	ropeField, ropeRaw := "rope_scaling", r.RopeScaling
	if !isNull(r.RopeParameters) {
		ropeField, ropeRaw = "rope_parameters", r.RopeParameters
	}
	if !isNull(ropeRaw) {
		s, theta, err := parseRope(ropeRaw)
		if err != nil {
			return fmt.Errorf("field %s: %w", ropeField, err)
		}
		c.RopeScaling = s
		if theta != nil {
			c.RopeTheta = *theta
		}
	}
	if !(c.RopeTheta > 0) {
		return fmt.Errorf("field rope_theta = %g, want > 0", c.RopeTheta)
	}
	return nil
}

// weights sets the embedding tying and the dtype the weights are stored in (dtype, or the
// older torch_dtype; float32 when absent).
func (r *rawConfig) weights(c *Config) error {
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}
	dt := r.DType
	if dt == "" {
		dt = r.TorchDType
	}
	c.DType = F32
	if dt != "" {
		d, err := parseTorchDType(dt)
		if err != nil {
			return fmt.Errorf("field torch_dtype: %w", err)
		}
		c.DType = d
	}
	return nil
}

// specialTokens sets the BOS id (-1 when absent) and the EOS ids (an int or a list of ints);
// negative ids are refused (-1 stands for an absent BOS, and JSON would not keep another).
func (r *rawConfig) specialTokens(c *Config) error {
	c.BOSTokenID = -1
	if r.BOSTokenID != nil {
		if *r.BOSTokenID < 0 {
			return fmt.Errorf("field bos_token_id = %d, want a token id ≥ 0 or null", *r.BOSTokenID)
		}
		c.BOSTokenID = *r.BOSTokenID
	}
	if !isNull(r.EOSTokenID) {
		var one int
		if err := json.Unmarshal(r.EOSTokenID, &one); err == nil {
			c.EOSTokenIDs = []int{one}
		} else if err := json.Unmarshal(r.EOSTokenID, &c.EOSTokenIDs); err != nil {
			return fmt.Errorf("field eos_token_id: want an int or a list of ints")
		}
		if len(c.EOSTokenIDs) == 0 {
			c.EOSTokenIDs = nil // [] says what an absent field says: no end-of-sequence token
		}
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 {
			return fmt.Errorf("field eos_token_id: %d, want token ids ≥ 0", id)
		}
	}
	return nil
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

func parseRope(raw json.RawMessage) (*RopeScaling, *float64, error) {
	var r rawRope
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("malformed: %w", err)
	}
	kind := r.RopeType
	if kind == "" {
		kind = r.Type
	}
	switch kind {
	case "", "default":
		return nil, r.RopeTheta, nil
	case "llama3":
	default:
		return nil, nil, fmt.Errorf("rope type %q is not supported (want llama3 or default)", kind)
	}
	if r.Factor == nil || r.LowFreqFactor == nil || r.HighFreqFactor == nil || r.OriginalMaxPositionEmbeddings == nil {
		return nil, nil, fmt.Errorf("llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
	}
	s := &RopeScaling{*r.Factor, *r.LowFreqFactor, *r.HighFreqFactor, *r.OriginalMaxPositionEmbeddings}
	if !(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OriginalMaxPositionEmbeddings <= 0 {
		return nil, nil, fmt.Errorf("llama3 parameters out of range: %+v", *s)
	}
	return s, r.RopeTheta, nil
}

// QDim is the width of the query projection (heads × head_dim).
func (c Config) QDim() int { return c.NumHeads * c.HeadDim }

// KVDim is the width of the key and value projections.
func (c Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// InvFreq returns RoPE's inverse frequencies (head_dim/2 of them) computed in float32 in the
// order of operations transformers uses, llama3 scaling included, so that angles agree bit for
// bit at long positions.
func (c Config) InvFreq() []float32 {
	half := c.HeadDim / 2
	inv := make([]float32, half)
	for i := range inv {
		e := float32(2*i) / float32(c.HeadDim)
		inv[i] = 1 / float32(math.Pow(c.RopeTheta, float64(e)))
	}
	s := c.RopeScaling
	if s == nil {
		return inv
	}
	factor, low, high := float32(s.Factor), float32(s.LowFreqFactor), float32(s.HighFreqFactor)
	old := float32(s.OriginalMaxPositionEmbeddings)
	lowWavelen, highWavelen := old/low, old/high
	for i, f := range inv {
		wavelen := 2 * float32(math.Pi) / f
		scaled := f
		if wavelen > lowWavelen {
			scaled = f / factor
		}
		if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
			smooth := (old/wavelen - low) / (high - low)
			scaled = (1-smooth)*scaled/factor + smooth*scaled
		}
		inv[i] = scaled
	}
	return inv
}

// JSON renders the configuration as a transformers config.json (rope_scaling spelling).
func (c Config) JSON() ([]byte, error) {
	m := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumLayers,
		"num_attention_heads":     c.NumHeads,
		"num_key_value_heads":     c.NumKVHeads,
		"head_dim":                c.HeadDim,
		"vocab_size":              c.VocabSize,
		"rms_norm_eps":            c.RMSNormEps,
		"rope_theta":              c.RopeTheta,
		"rope_scaling":            nil,
		"tie_word_embeddings":     c.TieWordEmbeddings,
		"torch_dtype":             c.DType.TorchName(),
		"max_position_embeddings": c.MaxPositions,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"attention_dropout":       0.0,
		"mlp_bias":                false,
		"initializer_range":       0.02,
		"pretraining_tp":          1,
		"use_cache":               true,
	}
	if c.BOSTokenID >= 0 {
		m["bos_token_id"] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	if s := c.RopeScaling; s != nil {
		m["rope_scaling"] = map[string]any{
			"rope_type":                        "llama3",
			"factor":                           s.Factor,
			"low_freq_factor":                  s.LowFreqFactor,
			"high_freq_factor":                 s.HighFreqFactor,
			"original_max_position_embeddings": s.OriginalMaxPositionEmbeddings,
		}
	}
	return json.MarshalIndent(m, "", "  ")
}
