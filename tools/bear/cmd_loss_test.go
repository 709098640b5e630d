package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLossCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cases.json")
	// Two positions: three allowed tokens, then a single one (loss and gradient 0).
	in := `{"loss":"msl","tau":1,"k":2,"positions":[{"logits":[0,1,2],"target":2},{"logits":[5],"target":0}]}`
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := lossMain([]string{"--cases", path}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Loss      float64     `json:"loss"`
		Grads     [][]float64 `json:"grads"`
		Positions []struct {
			LogP    float64 `json:"logp"`
			LogBeta float64 `json:"logbeta"`
			Margin  float64 `json:"margin"`
			InTopK  bool    `json:"in_top_k"`
		} `json:"positions"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	lse := math.Log(1 + math.E + math.E*math.E)
	logp := 2 - lse
	if math.Abs(got.Loss-(-logp/2)) > 1e-15 {
		t.Errorf("loss %v, want %v", got.Loss, -logp/2)
	}
	wantG := []float64{math.Exp(-lse) / 2, math.Exp(1-lse) / 2, (math.Exp(2-lse) - 1) / 2}
	for j, w := range wantG {
		if math.Abs(got.Grads[0][j]-w) > 1e-15 {
			t.Errorf("grads[0][%d] = %v, want %v", j, got.Grads[0][j], w)
		}
	}
	if len(got.Grads) != 2 || got.Grads[1][0] != 0 {
		t.Errorf("grads %v", got.Grads)
	}
	p := got.Positions[0]
	if math.Abs(p.LogP-logp) > 1e-15 || math.Abs(p.LogBeta-(1-lse)) > 1e-15 || !p.InTopK || math.Abs(p.Margin-(-1)) > 1e-15 {
		t.Errorf("diagnostics %+v", p)
	}
}

func TestLossCommandErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ in, want string }{
		{`{"loss":"bear","positions":[{"logits":[1,2],"target":0},{"logits":[1,2,3,4,5],"target":7}]}`, "cases.json: positions[1].target 7 out of range [0,5)"},
		{`{"loss":"bear","positions":[{"logits":[1,"x"],"target":0}]}`, "cases.json: positions[0].logits: JSON string, want float64"},
		{`{"loss":"bear","positions":[{"logits":[],"target":0}]}`, "cases.json: positions[0].logits: empty or missing"},
		{`{"loss":"bear","positions":[{"logits":[1],"targt":0}]}`, `cases.json: positions[0]: json: unknown field "targt"`},
		{`{"loss":"xent","positions":[]}`, `cases.json: loss: unknown loss "xent"`},
		{`{"loss":"msl","tau":0,"positions":[]}`, "cases.json: tau 0, want > 0"},
		{`{"loss":"msl","positions":[}`, "cases.json: invalid JSON"},
	} {
		path := filepath.Join(dir, "cases.json")
		if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
			t.Fatal(err)
		}
		err := lossMain([]string{"--cases", path}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestLossCommandGolden runs one PyTorch golden case (testdata/lossgrad, written by
// tools/reference/lossref.py) through the command: 1e-6 relative, the goldens' tolerance.
func TestLossCommandGolden(t *testing.T) {
	f, err := os.Open("../../testdata/lossgrad/goldens.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
			Want  struct {
				Loss  float64     `json:"loss"`
				Grads [][]float64 `json:"grads"`
			} `json:"want"`
		} `json:"cases"`
	}
	if err := json.NewDecoder(zr).Decode(&golden); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range golden.Cases {
		if c.Name != "bear/trie_like" && c.Name != "lml/tau2" {
			continue
		}
		ran++
		path := filepath.Join(t.TempDir(), "case.json")
		if err := os.WriteFile(path, c.Input, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := lossMain([]string{"--cases", path}, &out); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Loss  float64     `json:"loss"`
			Grads [][]float64 `json:"grads"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.Loss-c.Want.Loss) > 1e-6*math.Abs(c.Want.Loss) {
			t.Errorf("%s: loss %v, golden %v", c.Name, got.Loss, c.Want.Loss)
		}
		for i, w := range c.Want.Grads {
			for j, v := range w {
				if math.Abs(got.Grads[i][j]-v) > 1e-6*math.Abs(v)+1e-15 {
					t.Errorf("%s: grads[%d][%d] %v, golden %v", c.Name, i, j, got.Grads[i][j], v)
				}
			}
		}
	}
	if ran != 2 {
		t.Errorf("ran %d golden cases, want 2", ran)
	}
}
