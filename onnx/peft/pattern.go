package peft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/bearrec/bear/onnx/llama"
)

// patternFields are rank_pattern and alpha_pattern of an adapter_config.json, in file order.
type patternFields struct {
	rank  []llama.RankPattern
	alpha []llama.AlphaPattern
}

// numberEntry is one key of a pattern object with its value as written.
type numberEntry struct {
	key   string
	value json.Number
}

// readPatterns reads rank_pattern and alpha_pattern token by token, keeping their keys in the
// file's order: PEFT holds them in a dict (json.loads keeps insertion order) and tries the keys
// in that order, the first match winning, which a Go map would lose. A repeated key keeps its
// first place and its last value, and a repeated field its last object, as json.loads does.
// A document that is not an object, or is malformed outside the two fields, gives no patterns
// and no error: json.Unmarshal then reports it.
func readPatterns(data []byte) (patternFields, error) {
	var pf patternFields
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return pf, nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return patternFields{}, nil
		}
		field, _ := tok.(string)
		if field != "rank_pattern" && field != "alpha_pattern" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return patternFields{}, nil
			}
			continue
		}
		entries, err := readNumberObject(dec, field)
		if err != nil {
			return patternFields{}, err
		}
		if field == "rank_pattern" {
			pf.rank, err = rankPatterns(entries)
		} else {
			pf.alpha, err = alphaPatterns(entries)
		}
		if err != nil {
			return patternFields{}, err
		}
	}
	return pf, nil
}

// readNumberObject reads one pattern object (null: none) whose values must be JSON numbers.
func readNumberObject(dec *json.Decoder, field string) ([]numberEntry, error) {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return nil, fmt.Errorf("field %s: malformed JSON: %w", field, err)
	case tok == nil:
		return nil, nil
	case tok != json.Delim('{'):
		return nil, fmt.Errorf("field %s = %v, want an object of module name patterns", field, tok)
	}
	var entries []numberEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("field %s: malformed JSON: %w", field, err)
		}
		key := tok.(string) // object keys are strings, or Token fails
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("field %s[%q]: the value is not JSON (%v); want a finite number (NaN and Infinity are not)", field, key, err)
		}
		num, ok := v.(json.Number)
		if !ok {
			shown, _ := json.Marshal(v)
			return nil, fmt.Errorf("field %s[%q] = %s, want a number", field, key, shown)
		}
		if i := slices.IndexFunc(entries, func(e numberEntry) bool { return e.key == key }); i >= 0 {
			entries[i].value = num
		} else {
			entries = append(entries, numberEntry{key, num})
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("field %s: malformed JSON: %w", field, err)
	}
	return entries, nil
}

// rankPatterns converts rank_pattern's values: positive integers written as such (PEFT passes
// the value on as nn.Linear's size, so 4.0 or 4e0, Python floats, are refused there too).
func rankPatterns(entries []numberEntry) ([]llama.RankPattern, error) {
	var out []llama.RankPattern
	for _, e := range entries {
		r, err := strconv.Atoi(e.value.String())
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("field rank_pattern[%q] = %s, want a positive integer", e.key, e.value)
		}
		out = append(out, llama.RankPattern{Key: e.key, Rank: r})
	}
	return out, nil
}

// alphaPatterns converts alpha_pattern's values: finite numbers (1e999 overflows to infinity).
func alphaPatterns(entries []numberEntry) ([]llama.AlphaPattern, error) {
	var out []llama.AlphaPattern
	for _, e := range entries {
		a, err := strconv.ParseFloat(e.value.String(), 64)
		if err != nil || math.IsInf(a, 0) || math.IsNaN(a) {
			return nil, fmt.Errorf("field alpha_pattern[%q] = %s, want a finite number", e.key, e.value)
		}
		out = append(out, llama.AlphaPattern{Key: e.key, Alpha: a})
	}
	return out, nil
}

// jsonObject is a JSON object written with its entries in order.
type jsonObject []jsonEntry

type jsonEntry struct {
	key   string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for i, e := range o {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(e.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.value)
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return append(buf, '}'), nil
}
