package llama

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"

	"github.com/bearrec/bear/onnx/hf"
)

// RankPattern is one entry of PEFT's rank_pattern: the adapted modules whose name the key
// matches (see patternMatches) get rank Rank instead of the spec's r.
type RankPattern struct {
	Key  string `json:"key"`
	Rank int    `json:"r"`
}

// AlphaPattern is one entry of PEFT's alpha_pattern: the adapted modules whose name the key
// matches get Alpha instead of the spec's lora_alpha.
type AlphaPattern struct {
	Key   string  `json:"key"`
	Alpha float64 `json:"alpha"`
}

func (p RankPattern) patternKey() string  { return p.Key }
func (p AlphaPattern) patternKey() string { return p.Key }

// ModuleName is the name PEFT matches rank_pattern and alpha_pattern keys against: the module's
// name in LlamaForCausalLM.named_modules(), e.g. model.layers.3.self_attn.q_proj (the
// current_key of PEFT's LoraModel._create_and_replace).
func ModuleName(layer int, module string) string {
	path, ok := hf.ModulePath[module]
	if !ok {
		path = module // not a projection: Validate refuses it as a target
	}
	return fmt.Sprintf("model.layers.%d.%s", layer, path)
}

// ModuleRank is the rank r of the module's LoRA matrices: the value of the first rank_pattern
// key that matches its name, else the spec's Rank. A is [r, in] and B [out, r].
func (s LoRASpec) ModuleRank(layer int, module string) int {
	if i := firstMatch(s.RankPattern, ModuleName(layer, module)); i >= 0 {
		return s.RankPattern[i].Rank
	}
	return s.Rank
}

// ModuleAlpha is the module's lora_alpha: the value of the first alpha_pattern key that matches
// its name, else the spec's Alpha. The rank and the alpha are looked up independently, as PEFT
// does: a module may take its rank from one key and its alpha from the defaults.
func (s LoRASpec) ModuleAlpha(layer int, module string) float64 {
	if i := firstMatch(s.AlphaPattern, ModuleName(layer, module)); i >= 0 {
		return s.AlphaPattern[i].Alpha
	}
	return s.Alpha
}

// ModuleScaling is the factor PEFT applies to the module's LoRA branch (LoraLayer.update_layer):
// alpha/r, or alpha/sqrt(r) with use_rslora, with the module's own alpha and r.
func (s LoRASpec) ModuleScaling(layer int, module string) float64 {
	alpha, r := s.ModuleAlpha(layer, module), float64(s.ModuleRank(layer, module))
	if s.RSLoRA {
		return alpha / math.Sqrt(r)
	}
	return alpha / r
}

// HasPatterns reports whether some module may differ from the spec's r and alpha.
func (s LoRASpec) HasPatterns() bool { return len(s.RankPattern) > 0 || len(s.AlphaPattern) > 0 }

// firstMatch is the index of the first pattern whose key matches name (PEFT's get_pattern_key:
// the keys are tried in order and the first match wins), or -1. A key that does not compile
// matches nothing; Validate refuses such specs before they reach a graph or a merge.
func firstMatch[P interface{ patternKey() string }](ps []P, name string) int {
	for i, p := range ps {
		if ok, err := patternMatches(p.patternKey(), name); err == nil && ok {
			return i
		}
	}
	return -1
}

// patternMatches reports whether a rank_pattern or alpha_pattern key matches a module name as
// PEFT's get_pattern_key decides it: re.match(rf"(.*\.)?({key})$", name), a Python regular
// expression anchored at the start, so the key must match a whole dot-separated suffix of the
// name ("q_proj" and "self_attn.q_proj" match model.layers.0.self_attn.q_proj, "_proj" and
// "attn.q_proj" do not). The Go expression is ^(?:(.*\.)?(KEY)$): the same text inside a group
// anchored at the start, which is what re.match does even for a key whose top-level "|" or ")"
// escapes PEFT's group. A key Go's regexp (RE2) cannot compile (lookarounds, backreferences)
// or reads differently from Python's re is an error naming it.
func patternMatches(key, name string) (bool, error) {
	re, err := patternRegexp(key)
	if err != nil {
		return false, err
	}
	return re.MatchString(name), nil
}

// compiledPattern caches one key's expression: specs are queried once per module and graph.
type compiledPattern struct {
	re  *regexp.Regexp
	err error
}

var patternCache sync.Map // key → compiledPattern

// pythonOnly finds the syntax Go's regexp accepts with another meaning than Python's re: the
// quantifier {,n} ({0,n} in Python, literal text in Go) and POSIX classes like [:alpha:]
// (literal characters inside a set in Python). Such keys are refused rather than matched
// differently from PEFT.
var pythonOnly = regexp.MustCompile(`(^|[^\\])\{,[0-9]*\}|\[:\^?[a-z]+:\]`)

func patternRegexp(key string) (*regexp.Regexp, error) {
	if c, ok := patternCache.Load(key); ok {
		return c.(compiledPattern).re, c.(compiledPattern).err
	}
	var c compiledPattern
	if m := pythonOnly.FindString(key); m != "" {
		m = m[strings.IndexAny(m, "{["):]
		c.err = fmt.Errorf("key %q: Python's re (PEFT's matcher) and Go's regexp read %q differently "+
			"({,n} is {0,n} in Python, literal text in Go; [:name:] in a set is literal characters in Python, a class in Go)", key, m)
	} else if c.re, c.err = regexp.Compile(`^(?:(.*\.)?(` + key + `)$)`); c.err != nil {
		c.err = fmt.Errorf("key %q: Go's regexp (RE2) cannot compile it, so it cannot be matched as PEFT does "+
			"(lookarounds and backreferences are not supported): %v", key, c.err)
	}
	patternCache.Store(key, c)
	return c.re, c.err
}

// validatePatterns checks the keys (they compile, none repeats: a JSON object holds a key once)
// and the values (positive ranks, finite alphas), naming the field and key of the first fault.
func (s LoRASpec) validatePatterns() error {
	seen := map[string]bool{}
	for _, p := range s.RankPattern {
		if err := checkPatternKey("rank_pattern", p.Key, seen); err != nil {
			return err
		}
		if p.Rank <= 0 {
			return fmt.Errorf("rank_pattern[%q] = %d, want a positive rank", p.Key, p.Rank)
		}
	}
	clear(seen)
	for _, p := range s.AlphaPattern {
		if err := checkPatternKey("alpha_pattern", p.Key, seen); err != nil {
			return err
		}
		if math.IsNaN(p.Alpha) || math.IsInf(p.Alpha, 0) {
			return fmt.Errorf("alpha_pattern[%q] = %g, want a finite number", p.Key, p.Alpha)
		}
	}
	return nil
}

func checkPatternKey(field, key string, seen map[string]bool) error {
	if seen[key] {
		return fmt.Errorf("%s[%q]: the key appears twice", field, key)
	}
	seen[key] = true
	if _, err := patternRegexp(key); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}
