package trainlog

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"

	"github.com/bearrec/bear/internal/atomicfs"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot geometry in pixels: every panel has the full width and PanelHeight.
const (
	PlotWidth   = 1000
	PanelHeight = 300
)

// The series colours (also what the tests look for in each panel).
var (
	lossColor     = color.RGBA{R: 150, G: 175, B: 225, A: 255} // loss of each step, light
	lossMeanColor = color.RGBA{R: 20, G: 50, B: 150, A: 255}   // its running mean, dark
	prunedColor   = color.RGBA{R: 200, G: 30, B: 30, A: 255}
	ndcgColor     = color.RGBA{R: 20, G: 140, B: 50, A: 255}
	validColor    = color.RGBA{R: 120, G: 60, B: 180, A: 255}
)

// ndcgKey is the metric of the evaluation panel.
const ndcgKey = "ndcg@10"

// Plot draws the log as one PNG of stacked panels sharing the epoch axis: the loss of each
// step with its running mean, the pruned share of each step, and NDCG@10 after each epoch
// when some evaluation has it (the panel is left out otherwise). The image is PlotWidth wide
// and PanelHeight per panel; it is written to a temporary file next to out and renamed, so out
// is never left half-written. Values that are not finite (a diverged step) are left out.
func Plot(steps []Step, evals []Eval, title, out string) error {
	if len(steps) == 0 {
		return errors.New("empty log: no step records to plot")
	}
	panels := []*plot.Plot{lossPanel(steps), prunedPanel(steps)}
	if p := ndcgPanel(evals); p != nil {
		panels = append(panels, p)
	}
	maxEpoch := 0.0
	for _, s := range steps {
		if isFinite(s.Epoch) && s.Epoch > maxEpoch {
			maxEpoch = s.Epoch
		}
	}
	for _, e := range evals {
		maxEpoch = math.Max(maxEpoch, float64(e.Epoch))
	}
	for _, p := range panels {
		p.X.Min, p.X.Max = 0, maxEpoch
	}
	panels[0].Title.Text = title
	panels[len(panels)-1].X.Label.Text = "epoch"
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	return WritePNG(out, PlotWidth, PanelHeight*len(panels), grid)
}

// lossPanel plots the loss per step (x: epoch) and, once there are enough steps for noise to
// hide the trend, its running mean.
func lossPanel(steps []Step) *plot.Plot {
	p := newPanel("loss")
	raw := stepSeries(steps, func(s Step) float64 { return s.Loss })
	addLine(p, raw, lossColor, 1, "")
	if window := len(steps) / 50; window >= 2 {
		addLine(p, runningMean(raw, window), lossMeanColor, 2, fmt.Sprintf("mean of %d steps", window))
		p.Legend.Top = true
	}
	return p
}

// prunedPanel plots the share of response positions whose target the top-K cut removes.
func prunedPanel(steps []Step) *plot.Plot {
	p := newPanel("pruned share")
	p.Y.Min = 0
	addLine(p, stepSeries(steps, func(s Step) float64 { return s.PrunedShare }), prunedColor, 1.5, "")
	return p
}

// ndcgPanel plots NDCG@10 per evaluation, a line per split (validation, test), or returns nil
// when no evaluation has it.
func ndcgPanel(evals []Eval) *plot.Plot {
	bySplit := map[string]plotter.XYs{}
	for _, e := range evals {
		if v, ok := e.Metric(ndcgKey); ok && isFinite(v) {
			split := e.Split
			if split == "" {
				split = "test"
			}
			bySplit[split] = append(bySplit[split], plotter.XY{X: float64(e.Epoch), Y: v})
		}
	}
	if len(bySplit) == 0 {
		return nil
	}
	p := newPanel("NDCG@10")
	for _, split := range []string{"valid", "test"} {
		xys := bySplit[split]
		if len(xys) == 0 {
			continue
		}
		c, legend := ndcgColor, ""
		if split == "valid" {
			c = validColor
		}
		if len(bySplit) > 1 {
			legend = map[string]string{"valid": "validation", "test": "test"}[split]
		}
		addLine(p, xys, c, 2, legend)
		if pts, err := plotter.NewScatter(xys); err == nil {
			pts.GlyphStyle.Color, pts.GlyphStyle.Shape, pts.GlyphStyle.Radius = c, draw.CircleGlyph{}, vg.Points(3)
			p.Add(pts)
		}
	}
	return p
}

func newPanel(yLabel string) *plot.Plot {
	p := plot.New()
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds xys as a line (nothing when empty: gonum cannot range an empty series).
func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, widthPt float64, legend string) {
	if len(xys) == 0 {
		return
	}
	l, err := plotter.NewLine(xys)
	if err != nil { // only for non-finite points, which stepSeries already left out
		return
	}
	l.LineStyle.Color, l.LineStyle.Width = c, vg.Points(widthPt)
	p.Add(l)
	if legend != "" {
		p.Legend.Add(legend, l)
	}
}

// stepSeries returns (epoch, value) of each step whose epoch and value are finite.
func stepSeries(steps []Step, value func(Step) float64) plotter.XYs {
	xys := make(plotter.XYs, 0, len(steps))
	for _, s := range steps {
		if v := value(s); isFinite(s.Epoch) && isFinite(v) {
			xys = append(xys, plotter.XY{X: s.Epoch, Y: v})
		}
	}
	return xys
}

// runningMean returns the mean of each point's value and the window-1 points before it.
func runningMean(xys plotter.XYs, window int) plotter.XYs {
	out := make(plotter.XYs, len(xys))
	sum := 0.0
	for i, xy := range xys {
		sum += xy.Y
		if i >= window {
			sum -= xys[i-window].Y
		}
		out[i] = plotter.XY{X: xy.X, Y: sum / float64(min(i+1, window))}
	}
	return out
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// WritePNG draws grid (rows of panels, every row as long) on a w × h image with aligned data
// areas and writes it to path atomically (a temporary file beside it, renamed). gonum/plot
// panics on data it cannot lay out (say, extreme magnitudes); logs and runs are user input, so
// that becomes an error.
func WritePNG(path string, w, h int, grid [][]*plot.Plot) error {
	img, err := render(w, h, grid)
	if err != nil {
		return err
	}
	return atomicfs.WriteFile(path, func(f *os.File) error { return png.Encode(f, img) })
}

func render(w, h int, grid [][]*plot.Plot) (img image.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("plot: %v", r)
		}
	}()
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	canvas := vgimg.NewWith(vgimg.UseImage(rgba), vgimg.UseDPI(vgimg.DefaultDPI))
	pad := vg.Points(8)
	tiles := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: 2 * pad, PadY: pad, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: 2 * pad}
	for i, row := range plot.Align(grid, tiles, draw.New(canvas)) {
		for j, c := range row {
			grid[i][j].Draw(c)
		}
	}
	return canvas.Image(), nil
}
