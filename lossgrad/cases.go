package lossgrad

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Case is one batch read from a case file (the format of `bear loss --cases`):
//
//	{"loss":"bear","tau":1,"xi":2.75,"lambda":0.25,"k":10,
//	 "positions":[{"logits":[...],"target":3},...]}
//
// Absent tau, xi, lambda and k take DefaultConfig's values.
type Case struct {
	Config Config
	Slices LogitSlices[float64]
}

// CaseOutput is the JSON result of a case.
type CaseOutput struct {
	Loss           float64          `json:"loss"`
	Grads          [][]float64      `json:"grads"`
	Positions      []PositionOutput `json:"positions"`
	Violations     int              `json:"violations"`
	ViolationShare float64          `json:"violation_share"`
	WeightSum      float64          `json:"weight_sum,omitempty"`
}

// PositionOutput is the JSON form of Position.
type PositionOutput struct {
	LogP    float64 `json:"logp"`
	LogBeta float64 `json:"logbeta"`
	Margin  float64 `json:"margin"`
	InTopK  bool    `json:"in_top_k"`
	Weight  float64 `json:"weight"`
	NLL     float64 `json:"nll"`
}

type caseJSON struct {
	Loss      *string           `json:"loss"`
	Tau       *float64          `json:"tau"`
	Xi        *float64          `json:"xi"`
	Lambda    *float64          `json:"lambda"`
	K         *int              `json:"k"`
	Positions []json.RawMessage `json:"positions"`
}

type positionJSON struct {
	Logits []float64 `json:"logits"`
	Target *int      `json:"target"`
}

// DecodeCase reads one case; errors name the file and the field at fault, e.g.
// "cases.json: positions[3].target 7 out of range [0,5)".
func DecodeCase(name string, r io.Reader) (*Case, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var cj caseJSON
	if err := strictUnmarshal(data, &cj); err != nil {
		return nil, fmt.Errorf("%s: %s", name, jsonErr("", err))
	}
	if cj.Loss == nil {
		return nil, fmt.Errorf("%s: loss: missing (want \"lml\", \"msl\" or \"bear\")", name)
	}
	kind, err := ParseKind(*cj.Loss)
	if err != nil {
		return nil, fmt.Errorf("%s: loss: %v", name, err)
	}
	cfg := DefaultConfig(kind)
	if cj.Tau != nil {
		cfg.Tau = *cj.Tau
	}
	if cj.Xi != nil {
		cfg.Xi = *cj.Xi
	}
	if cj.Lambda != nil {
		cfg.Lambda = *cj.Lambda
	}
	if cj.K != nil {
		cfg.K = *cj.K
	}
	switch {
	case !(cfg.Tau > 0):
		return nil, fmt.Errorf("%s: tau %v, want > 0", name, cfg.Tau)
	case !(cfg.Xi > 0):
		return nil, fmt.Errorf("%s: xi %v, want > 0", name, cfg.Xi)
	case !(cfg.Lambda >= 0):
		return nil, fmt.Errorf("%s: lambda %v, want >= 0", name, cfg.Lambda)
	case cfg.K < 1:
		return nil, fmt.Errorf("%s: k %d, want >= 1", name, cfg.K)
	}
	if cj.Positions == nil {
		return nil, fmt.Errorf("%s: positions: missing", name)
	}
	c := &Case{Config: cfg}
	c.Slices.Offsets = append(c.Slices.Offsets, 0)
	for i, raw := range cj.Positions {
		field := fmt.Sprintf("positions[%d]", i)
		var pj positionJSON
		if err := strictUnmarshal(raw, &pj); err != nil {
			return nil, fmt.Errorf("%s: %s", name, jsonErr(field+".", err))
		}
		if len(pj.Logits) == 0 {
			return nil, fmt.Errorf("%s: %s.logits: empty or missing", name, field)
		}
		if pj.Target == nil {
			return nil, fmt.Errorf("%s: %s.target: missing", name, field)
		}
		if t := *pj.Target; t < 0 || t >= len(pj.Logits) {
			return nil, fmt.Errorf("%s: %s.target %d out of range [0,%d)", name, field, t, len(pj.Logits))
		}
		c.Slices.Logits = append(c.Slices.Logits, pj.Logits...)
		c.Slices.Offsets = append(c.Slices.Offsets, len(c.Slices.Logits))
		c.Slices.Targets = append(c.Slices.Targets, *pj.Target)
	}
	return c, nil
}

// Run evaluates the case in float64.
func (c *Case) Run() (CaseOutput, error) {
	n := len(c.Slices.Targets)
	grad := make([]float64, len(c.Slices.Logits))
	diag := make([]Position, n)
	res, err := computeOnce(c.Config, c.Slices, grad, diag)
	if err != nil {
		return CaseOutput{}, err
	}
	out := CaseOutput{
		Loss:           res.Loss,
		Grads:          make([][]float64, n),
		Positions:      make([]PositionOutput, n),
		Violations:     res.Violations,
		ViolationShare: res.ViolationShare,
		WeightSum:      res.WeightSum,
	}
	for i := range diag {
		out.Grads[i] = grad[c.Slices.Offsets[i]:c.Slices.Offsets[i+1]]
		d := diag[i]
		out.Positions[i] = PositionOutput{LogP: d.LogP, LogBeta: d.LogBeta, Margin: d.Margin, InTopK: d.InTopK, Weight: d.Weight, NLL: d.NLL}
	}
	return out, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonErr words a decoding error with the field path prefix.
func jsonErr(prefix string, err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("%s%s: JSON %s, want %v", prefix, te.Field, te.Value, te.Type)
	case errors.As(err, &se):
		return fmt.Sprintf("%sinvalid JSON at byte %d: %v", prefix, se.Offset, se)
	}
	if prefix != "" {
		return prefix[:len(prefix)-1] + ": " + err.Error()
	}
	return err.Error()
}
