package lossgrad

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeCase feeds `bear loss` case files to DecodeCase. Every input gives an error or a
// case that is well formed (Config valid, offsets from 0 to len(Logits), one target per
// position inside its slice); a well-formed case runs without panicking, and a run that
// succeeds has one gradient per logit and a result `bear loss` can write as JSON.
//
//	go test ./lossgrad -run '^$' -fuzz '^FuzzDecodeCase$' -fuzztime 60s
func FuzzDecodeCase(f *testing.F) {
	for _, seed := range []string{
		`{"loss":"bear","tau":1,"xi":2.75,"lambda":0.25,"k":10,"positions":[{"logits":[1,2,3],"target":0},{"logits":[0.5,-1],"target":1}]}`,
		`{"loss":"msl","positions":[{"logits":[3,1,4,1,5,9,2,6],"target":5}]}`,
		`{"loss":"lml","tau":0.5,"positions":[{"logits":[0],"target":0}]}`,
		`{"loss":"bear","k":1,"lambda":0,"positions":[{"logits":[1e30,-1e30,0],"target":1}]}`,
		`{"loss":"bear","positions":[]}`,
		`{"loss":"bear","positions":[{"logits":[1,2],"target":2}]}`,
		`{"loss":"bear","tau":0,"positions":[{"logits":[1],"target":0}]}`,
		`{"loss":"bear","k":0,"positions":[{"logits":[1],"target":0}]}`,
		`{"loss":"mse","positions":[{"logits":[1],"target":0}]}`,
		`{"loss":"bear","positions":[{"logits":[1],"target":0,"extra":1}]}`,
		`{"loss":"bear","positions":[{"logits":[],"target":0}]}`,
		`{"loss":"bear","positions":[{"logits":[1,2]}]}`,
		`{"loss":"bear","positions":[{"logits":[1,2],"target":-1}]}`,
		`{"loss":"bear","positions":[{"logits":"x","target":0}]}`,
		`{"loss":"bear","positions":[{"logits":[1],"target":0}]} trailing`,
		`{"loss":"bear","positions":[{"logits":[1,2,3],"target":0}`,
		`{"positions":[{"logits":[1],"target":0}]}`,
		`null`, `[]`, ``, `{}`, `{"loss":null}`,
		// Found by fuzzing: a K of a billion allocated K floats per position (out of memory).
		`{"loss":"bear","k":1000000000,"positions":[{"logits":[1,2,3],"target":0}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCase("fuzz.json", bytes.NewReader(data))
		if err != nil {
			if c != nil {
				t.Fatalf("error %v with a case", err)
			}
			return
		}
		checkCase(t, c)
		res, err := c.Run()
		if err != nil {
			return // e.g. logits whose scaled values overflow: an error, not a result
		}
		if len(res.Grads) != len(c.Slices.Targets) || len(res.Positions) != len(c.Slices.Targets) {
			t.Fatalf("%d gradient rows and %d positions for %d positions", len(res.Grads), len(res.Positions), len(c.Slices.Targets))
		}
		for i, g := range res.Grads {
			if len(g) != c.Slices.Offsets[i+1]-c.Slices.Offsets[i] {
				t.Fatalf("position %d: %d gradients for %d logits", i, len(g), c.Slices.Offsets[i+1]-c.Slices.Offsets[i])
			}
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("result of a successful run cannot be written: %v", err)
		}
	})
}

// checkCase fails the test unless c is well formed.
func checkCase(t *testing.T, c *Case) {
	t.Helper()
	if err := c.Config.Validate(); err != nil {
		t.Fatalf("decoded config invalid: %v", err)
	}
	s := c.Slices
	if len(s.Offsets) != len(s.Targets)+1 || s.Offsets[0] != 0 || s.Offsets[len(s.Offsets)-1] != len(s.Logits) {
		t.Fatalf("offsets %v for %d targets and %d logits", s.Offsets, len(s.Targets), len(s.Logits))
	}
	for i, target := range s.Targets {
		if n := s.Offsets[i+1] - s.Offsets[i]; n < 1 || target < 0 || target >= n {
			t.Fatalf("position %d: target %d of %d logits", i, target, n)
		}
	}
}
