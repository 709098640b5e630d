package trainlog

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntheticRun returns n steps over epochs epochs with a decaying, noisy loss and a falling
// pruned share, and one evaluation per epoch.
func syntheticRun(n, epochs int) ([]Step, []Eval) {
	steps := make([]Step, n)
	for i := range steps {
		x := float64(i+1) / float64(n)
		steps[i] = Step{Step: i + 1, Epoch: x * float64(epochs), Loss: 3*math.Exp(-2*x) + 0.3*math.Sin(float64(7*i)),
			PrunedShare: 0.6 - 0.4*x}
	}
	var evals []Eval
	for e := 1; e <= epochs; e++ {
		evals = append(evals, Eval{Step: e * n / epochs, Epoch: e, Users: 50,
			Metrics: map[string]float64{"ndcg@10": 0.02 * float64(e*e), "hr@10": 0.1}})
	}
	return steps, evals
}

// near reports whether c is within 12 of want in each channel (anti-aliasing blends edges).
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(v uint32, w uint8) bool { return math.Abs(float64(v>>8)-float64(w)) <= 12 }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

// bandStats counts the distinct colours of rows [y0,y1) and the pixels near each of colours.
func bandStats(img image.Image, y0, y1 int, colours []color.RGBA) (distinct int, hits []int) {
	seen := map[color.Color]bool{}
	hits = make([]int, len(colours))
	b := img.Bounds()
	for y := b.Min.Y + y0; y < b.Min.Y+y1; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			seen[c] = true
			for i, want := range colours {
				if near(c, want) {
					hits[i]++
				}
			}
		}
	}
	return len(seen), hits
}

func TestPlot(t *testing.T) {
	steps, evals := syntheticRun(400, 4)
	diverged := append(append([]Step(nil), steps[:200]...), Step{Step: 201, Epoch: 2.01, Loss: math.NaN(), PrunedShare: math.Inf(1)})
	upperEvals := []Eval{{Step: 400, Epoch: 4, Metrics: map[string]float64{"NDCG@10": 0.3}}}
	noNDCG := []Eval{{Step: 400, Epoch: 4, Metrics: map[string]float64{"hr@10": 0.3}}}
	for _, tc := range []struct {
		name  string
		steps []Step
		evals []Eval
		// colours each panel must show, top to bottom; the panel count follows
		panels [][]color.RGBA
	}{
		{"with evaluations", steps, evals, [][]color.RGBA{{lossColor, lossMeanColor}, {prunedColor}, {ndcgColor}}},
		{"without evaluations", steps, nil, [][]color.RGBA{{lossColor, lossMeanColor}, {prunedColor}}},
		{"evaluations without ndcg@10", steps, noNDCG, [][]color.RGBA{{lossColor, lossMeanColor}, {prunedColor}}},
		{"upper-case metric key", steps, upperEvals, [][]color.RGBA{{lossColor}, {prunedColor}, {ndcgColor}}},
		{"few steps, no running mean", steps[:40], nil, [][]color.RGBA{{lossColor}, {prunedColor}}},
		{"diverged last step", diverged, nil, [][]color.RGBA{{lossColor, lossMeanColor}, {prunedColor}}},
		{"single step", steps[:1], nil, [][]color.RGBA{{}, {}}},
	} {
		out := filepath.Join(t.TempDir(), "train.png")
		if err := Plot(tc.steps, tc.evals, "run "+tc.name, out); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: decode: %v", tc.name, err)
		}
		if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != PlotWidth || h != PanelHeight*len(tc.panels) {
			t.Fatalf("%s: image %dx%d, want %dx%d", tc.name, w, h, PlotWidth, PanelHeight*len(tc.panels))
		}
		for i, colours := range tc.panels {
			distinct, hits := bandStats(img, i*PanelHeight, (i+1)*PanelHeight, colours)
			if distinct < 2 {
				t.Errorf("%s: panel %d is uniform", tc.name, i)
			}
			for j, n := range hits {
				if n < 20 {
					t.Errorf("%s: panel %d: %d pixels of colour %v, want a drawn series", tc.name, i, n, colours[j])
				}
			}
		}
		// The series of one panel must not spill into another: pruned red only in panel 1.
		for i := range tc.panels {
			if _, hits := bandStats(img, i*PanelHeight, (i+1)*PanelHeight, []color.RGBA{prunedColor}); i != 1 && hits[0] > 0 {
				t.Errorf("%s: panel %d has %d pruned-share pixels", tc.name, i, hits[0])
			}
		}
	}
}

func TestPlotErrors(t *testing.T) {
	steps, evals := syntheticRun(10, 1)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		steps []Step
		out   string
		want  string
	}{
		{"empty log", nil, filepath.Join(dir, "a.png"), "empty log"},
		{"missing folder", steps, filepath.Join(dir, "nowhere", "a.png"), "nowhere"},
	} {
		err := Plot(tc.steps, evals, "", tc.out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed plots left %d files", len(entries))
	}
}
