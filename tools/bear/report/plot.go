package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot geometry in pixels.
const (
	curveColumnWidth = 420 // one column of panels per setting
	curvePanelHeight = 300
	barWidthPx       = 110 // per setting of the NDCG@10 chart
	barHeightPx      = 480
)

var (
	seedLossColor   = color.RGBA{R: 150, G: 175, B: 225, A: 255} // one thin line per seed
	meanLossColor   = color.RGBA{R: 20, G: 50, B: 150, A: 255}   // the mean over seeds
	seedPrunedColor = color.RGBA{R: 235, G: 160, B: 160, A: 255}
	meanPrunedColor = color.RGBA{R: 190, G: 20, B: 20, A: 255}
	barColor        = color.RGBA{R: 90, G: 130, B: 200, A: 255}
)

// WriteFiles writes report.md and the plots into dir (an existing folder).
func (r *Report) WriteFiles(dir string) error {
	if err := atomicfs.WriteBytes(filepath.Join(dir, MarkdownFile), r.Markdown()); err != nil {
		return err
	}
	if err := trainlog.WritePNG(filepath.Join(dir, nDCGFile), barWidthPx*max(len(r.Settings), 3)+120, barHeightPx,
		[][]*plot.Plot{{r.ndcgChart()}}); err != nil {
		return fmt.Errorf("%s: %w", nDCGFile, err)
	}
	if grid := r.curvePanels(); grid != nil {
		if err := trainlog.WritePNG(filepath.Join(dir, curvesFile), curveColumnWidth*len(grid[0]), curvePanelHeight*len(grid), grid); err != nil {
			return fmt.Errorf("%s: %w", curvesFile, err)
		}
	}
	return nil
}

// ndcgChart is a bar of mean NDCG@10 per setting with its interval as a whisker (none for a
// setting of one run).
func (r *Report) ndcgChart() *plot.Plot {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("NDCG@10, mean over seeds with its %g%% interval", confidence*100)
	p.Y.Label.Text = "NDCG@10"
	p.Add(plotter.NewGrid())
	var vals plotter.Values
	var names []string
	var whiskers errorPoints
	for i, s := range r.Settings {
		iv := s.Metrics["NDCG@10"]
		vals = append(vals, iv.Mean)
		names = append(names, s.Label)
		if iv.HasCI() {
			whiskers.XYs = append(whiskers.XYs, plotter.XY{X: float64(i), Y: iv.Mean})
			whiskers.YErrors = append(whiskers.YErrors, struct{ Low, High float64 }{iv.Half, iv.Half})
		}
	}
	if bars, err := plotter.NewBarChart(vals, vg.Points(40)); err == nil {
		bars.Color, bars.LineStyle.Width = barColor, 0
		p.Add(bars)
	}
	if len(whiskers.XYs) > 0 {
		if eb, err := plotter.NewYErrorBars(whiskers); err == nil {
			eb.LineStyle.Width = vg.Points(1.5)
			p.Add(eb)
		}
	}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YTop
	p.Y.Min = 0
	return p
}

// errorPoints are whisker positions for plotter.NewYErrorBars.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

// curvePanels is one column per training setting: its loss per step and its pruned share per
// step, a thin line per seed and the mean over seeds in bold; nil without training runs.
func (r *Report) curvePanels() [][]*plot.Plot {
	var loss, pruned []*plot.Plot
	topShare := 0.0
	for _, s := range r.Settings {
		if !s.Training() {
			continue
		}
		lp := curvePanel(s, "loss", func(st trainlog.Step) float64 { return st.Loss }, seedLossColor, meanLossColor)
		lp.Title.Text = s.Label
		pp := curvePanel(s, "pruned share", func(st trainlog.Step) float64 { return st.PrunedShare }, seedPrunedColor, meanPrunedColor)
		pp.X.Label.Text = "optimizer step"
		topShare = math.Max(topShare, pp.Y.Max)
		loss, pruned = append(loss, lp), append(pruned, pp)
	}
	if len(loss) == 0 {
		return nil
	}
	for _, p := range pruned { // one scale, so that the settings' shares compare by eye
		p.Y.Min, p.Y.Max = 0, math.Max(topShare, 1e-3)
	}
	return [][]*plot.Plot{loss, pruned}
}

func curvePanel(s *Setting, yLabel string, value func(trainlog.Step) float64, seedColor, meanColor color.Color) *plot.Plot {
	p := plot.New()
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	sum, count := map[int]float64{}, map[int]int{}
	var lastStep int
	for _, run := range s.Runs {
		var xys plotter.XYs
		for _, st := range run.Steps {
			if v := value(st); !math.IsNaN(v) && !math.IsInf(v, 0) {
				xys = append(xys, plotter.XY{X: float64(st.Step), Y: v})
				sum[st.Step] += v
				count[st.Step]++
				lastStep = max(lastStep, st.Step)
			}
		}
		addLine(p, xys, seedColor, 0.8)
	}
	var mean plotter.XYs
	for step := 0; step <= lastStep; step++ {
		if n := count[step]; n > 0 {
			mean = append(mean, plotter.XY{X: float64(step), Y: sum[step] / float64(n)})
		}
	}
	addLine(p, mean, meanColor, 2)
	return p
}

// addLine adds xys as a line (nothing when empty: gonum cannot range an empty series).
func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, widthPt float64) {
	if len(xys) == 0 {
		return
	}
	if l, err := plotter.NewLine(xys); err == nil {
		l.LineStyle.Color, l.LineStyle.Width = c, vg.Points(widthPt)
		p.Add(l)
	}
	if len(xys) == 1 { // a line of one point draws nothing
		if pts, err := plotter.NewScatter(xys); err == nil {
			pts.GlyphStyle.Color, pts.GlyphStyle.Shape, pts.GlyphStyle.Radius = c, draw.CircleGlyph{}, vg.Points(widthPt+1)
			p.Add(pts)
		}
	}
}
