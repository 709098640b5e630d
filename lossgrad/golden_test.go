package lossgrad

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"
)

// The goldens come from tools/reference/lossref.py, a PyTorch (float64, autograd)
// transcription of the official compute_loss functions; `make goldens-lossgrad` or
// `go test ./lossgrad -run Golden -update` regenerates them.
const goldenPath = "../testdata/lossgrad/goldens.json.gz"

var update = flag.Bool("update", false, "regenerate the golden file with tools/reference/lossref.py")

type goldenFile struct {
	Generator string       `json:"generator"`
	Seed      int          `json:"seed"`
	Torch     string       `json:"torch"`
	Cases     []goldenCase `json:"cases"`
}

type goldenCase struct {
	Name              string          `json:"name"`
	OfficialNonfinite bool            `json:"official_nonfinite"`
	UnsupervisedRows  int             `json:"unsupervised_rows"`
	Input             json.RawMessage `json:"input"`
	Want              CaseOutput      `json:"want"`
}

func loadGoldens(t testing.TB) goldenFile {
	if *update {
		cmd := exec.Command("/usr/bin/python3", "../tools/reference/lossref.py", "--out", goldenPath)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("regenerate goldens: %v", err)
		}
	}
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", goldenPath, err)
	}
	var g goldenFile
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatalf("%s: %v", goldenPath, err)
	}
	return g
}

// Tolerance: 1e-6 relative, the bar. Values that are zero up to rounding (a loss
// whose every position has a single allowed token, gradients of tokens with probability
// near 1e-300) get an absolute floor of 1e-6 * 1e-9 times the case's largest gradient,
// far below anything a training step could see.
const goldenRel = 1e-6

type errStats struct {
	loss, grad, diag float64 // worst relative errors (with the floors above)
	bad              []string
}

func (s *errStats) check(what string, got, want, floor float64, worst *float64) {
	e := math.Abs(got-want) / math.Max(math.Abs(want), floor)
	if math.IsNaN(e) || math.IsNaN(got) != math.IsNaN(want) {
		e = math.Inf(1)
	}
	*worst = math.Max(*worst, e)
	if e > goldenRel && len(s.bad) < 10 {
		s.bad = append(s.bad, fmt.Sprintf("%s: got %.17g, want %.17g (rel %.3g)", what, got, want, e))
	}
}

func compareOutput(got, want CaseOutput) errStats {
	var s errStats
	s.check("loss", got.Loss, want.Loss, 1e-9, &s.loss)
	if len(got.Grads) != len(want.Grads) || len(got.Positions) != len(want.Positions) {
		s.bad = append(s.bad, fmt.Sprintf("positions: got %d, want %d", len(got.Grads), len(want.Grads)))
		return s
	}
	var gmax float64
	for _, g := range want.Grads {
		for _, v := range g {
			gmax = math.Max(gmax, math.Abs(v))
		}
	}
	for i := range want.Grads {
		if len(got.Grads[i]) != len(want.Grads[i]) {
			s.bad = append(s.bad, fmt.Sprintf("grads[%d]: got %d values, want %d", i, len(got.Grads[i]), len(want.Grads[i])))
			continue
		}
		for j := range want.Grads[i] {
			s.check(fmt.Sprintf("grads[%d][%d]", i, j), got.Grads[i][j], want.Grads[i][j], math.Max(1e-9*gmax, 1e-300), &s.grad)
		}
		g, w := got.Positions[i], want.Positions[i]
		p := fmt.Sprintf("positions[%d].", i)
		s.check(p+"logp", g.LogP, w.LogP, 1e-9, &s.diag)
		s.check(p+"logbeta", g.LogBeta, w.LogBeta, 1e-9, &s.diag)
		s.check(p+"margin", g.Margin, w.Margin, 1e-9, &s.diag)
		s.check(p+"weight", g.Weight, w.Weight, 1e-9, &s.diag)
		if g.InTopK != w.InTopK {
			s.bad = append(s.bad, fmt.Sprintf("%sin_top_k: got %v, want %v", p, g.InTopK, w.InTopK))
		}
	}
	return s
}

func TestGoldens(t *testing.T) {
	g := loadGoldens(t)
	if len(g.Cases) < 50 {
		t.Fatalf("%s: %d cases, want at least 50", goldenPath, len(g.Cases))
	}
	kinds := map[string]int{}
	var worst errStats
	for _, gc := range g.Cases {
		t.Run(gc.Name, func(t *testing.T) {
			c, err := DecodeCase(gc.Name, bytes.NewReader(gc.Input))
			if err != nil {
				t.Fatal(err)
			}
			kinds[c.Config.Kind.String()]++
			got, err := c.Run()
			if err != nil {
				t.Fatal(err)
			}
			s := compareOutput(got, gc.Want)
			t.Logf("relative errors: loss %.2g, grads %.2g, diagnostics %.2g", s.loss, s.grad, s.diag)
			for _, b := range s.bad {
				t.Error(b)
			}
			worst.loss = math.Max(worst.loss, s.loss)
			worst.grad = math.Max(worst.grad, s.grad)
			worst.diag = math.Max(worst.diag, s.diag)
		})
	}
	for _, k := range []string{"lml", "msl", "bear"} {
		if kinds[k] == 0 {
			t.Errorf("no %s case in the goldens", k)
		}
	}
	t.Logf("%d golden cases (%v); worst relative errors: loss %.2g, grads %.2g, diagnostics %.2g",
		len(g.Cases), kinds, worst.loss, worst.grad, worst.diag)
}

// TestGoldenComparisonDetects shows that the comparison is live: a golden gradient off by
// 1e-5 relative, a flipped in_top_k or a changed loss is reported.
func TestGoldenComparisonDetects(t *testing.T) {
	g := loadGoldens(t)
	for _, gc := range g.Cases {
		if gc.Name != "bear/loguniform" {
			continue
		}
		c, err := DecodeCase(gc.Name, bytes.NewReader(gc.Input))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Run()
		if err != nil {
			t.Fatal(err)
		}
		if s := compareOutput(got, gc.Want); len(s.bad) != 0 {
			t.Fatalf("unmodified case differs: %v", s.bad)
		}
		for name, corrupt := range map[string]func(*CaseOutput){
			"grad":     func(o *CaseOutput) { o.Grads[1][0] *= 1 + 1e-5 },
			"loss":     func(o *CaseOutput) { o.Loss *= 1 + 1e-5 },
			"in_top_k": func(o *CaseOutput) { o.Positions[0].InTopK = !o.Positions[0].InTopK },
			"weight":   func(o *CaseOutput) { o.Positions[2].Weight *= 1 + 1e-5 },
		} {
			want := gc.Want
			want.Grads = make([][]float64, len(gc.Want.Grads))
			for i := range want.Grads {
				want.Grads[i] = append([]float64(nil), gc.Want.Grads[i]...)
			}
			want.Positions = append([]PositionOutput(nil), gc.Want.Positions...)
			corrupt(&want)
			if s := compareOutput(got, want); len(s.bad) == 0 {
				t.Errorf("corrupted %s not detected", name)
			}
		}
		return
	}
	t.Fatal("case bear/loguniform not found")
}

// TestGoldensFloat32: the float32 path used in training agrees with the goldens to
// float32 precision (logits rounded to float32 first, so compare against float64 on the
// same rounded logits is not possible here; the tolerance covers the input rounding).
func TestGoldensFloat32(t *testing.T) {
	g := loadGoldens(t)
	for _, gc := range g.Cases {
		c, err := DecodeCase(gc.Name, bytes.NewReader(gc.Input))
		if err != nil {
			t.Fatal(err)
		}
		var big bool
		for _, v := range c.Slices.Logits {
			big = big || math.Abs(v) > 50
		}
		if big {
			continue // float32 rounding of |z| > 50 moves log-probabilities by > 1e-6
		}
		b := LogitSlices[float32]{Logits: make([]float32, len(c.Slices.Logits)), Offsets: c.Slices.Offsets, Targets: c.Slices.Targets}
		for i, v := range c.Slices.Logits {
			b.Logits[i] = float32(v)
		}
		grad := make([]float32, len(b.Logits))
		res, err := computeOnce(c.Config, b, grad, nil)
		if err != nil {
			t.Fatalf("%s: %v", gc.Name, err)
		}
		if e := math.Abs(res.Loss - gc.Want.Loss); e > 1e-5*math.Max(1, math.Abs(gc.Want.Loss)) {
			t.Errorf("%s: float32 loss %v, golden %v", gc.Name, res.Loss, gc.Want.Loss)
		}
		var gmax, emax float64
		for i, w := range gc.Want.Grads {
			for j, v := range w {
				gmax = math.Max(gmax, math.Abs(v))
				emax = math.Max(emax, math.Abs(float64(grad[b.Offsets[i]+j])-v))
			}
		}
		if emax > 1e-5*gmax {
			t.Errorf("%s: float32 gradient max error %.3g (max |g| %.3g)", gc.Name, emax, gmax)
		}
	}
}
