package report

import (
	"bytes"
	"flag"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

var update = flag.Bool("update", false, "rewrite the golden report.md")

// tTable is the 0.975 quantile of Student's t by degrees of freedom, from printed tables
// (independent of gonum's distuv).
var tTable = map[int]float64{1: 12.706204736174696, 2: 4.302652729911275, 3: 3.182446305284263}

// wantCI is the interval computed the textbook way: mean, sample standard deviation with n-1,
// t from the table.
func wantCI(xs ...float64) Interval {
	n := float64(len(xs))
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	mean := sum / n
	if len(xs) < 2 {
		return Interval{N: len(xs), Mean: mean, Half: math.NaN()}
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return Interval{N: len(xs), Mean: mean, Half: tTable[len(xs)-1] * math.Sqrt(ss/(n-1)) / math.Sqrt(n)}
}

func sameIv(a, b Interval) bool {
	// gonum inverts the t distribution numerically: its quantile agrees with the printed
	// tables to 4e-11 relative.
	close := func(x, y float64) bool {
		return (math.IsNaN(x) && math.IsNaN(y)) || math.Abs(x-y) <= 1e-9*math.Max(1e-3, math.Abs(y))
	}
	return a.N == b.N && close(a.Mean, b.Mean) && close(a.Half, b.Half)
}

func TestMeanCI(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		xs   []float64
		want Interval
	}{
		{"three seeds (the issue's example: 0.2 ± 0.2484)", []float64{0.1, 0.2, 0.3}, Interval{N: 3, Mean: 0.2, Half: 4.302652729911275 * 0.1 / math.Sqrt(3)}},
		{"one seed: no interval", []float64{0.5}, Interval{N: 1, Mean: 0.5, Half: nan}},
		{"NaN left out", []float64{1, nan, 3}, Interval{N: 2, Mean: 2, Half: 12.706204736174696}},
		{"equal values", []float64{2, 2, 2, 2}, Interval{N: 4, Mean: 2, Half: 0}},
		{"four values", []float64{0.1, 0.4, 0.2, 0.25}, wantCI(0.1, 0.4, 0.2, 0.25)},
		{"nothing", nil, Interval{N: 0, Mean: nan, Half: nan}},
	} {
		if got := meanCI(tc.xs); !sameIv(got, tc.want) {
			t.Errorf("%s: meanCI(%v) = %+v, want %+v", tc.name, tc.xs, got, tc.want)
		}
	}
	if got := meanCI([]float64{0.1, 0.2, 0.3}); math.Abs(got.Half-0.2484) > 5e-5 {
		t.Errorf("half-width %v, want 0.2484", got.Half)
	}
}

func TestWallSecondsAndMedian(t *testing.T) {
	for _, tc := range []struct {
		name    string
		elapsed []float64
		want    float64
	}{
		{"one process", []float64{10, 20, 30}, 30},
		{"resumed once: 20 s, then 15 s", []float64{10, 20, 5, 15}, 35},
		{"resumed twice", []float64{3, 1, 2, 1}, 3 + 2 + 1},
	} {
		r := &Run{}
		for i, e := range tc.elapsed {
			r.Steps = append(r.Steps, trainlog.Step{Step: i + 1, ElapsedS: e})
		}
		if got := wallSeconds(r); got != tc.want {
			t.Errorf("%s: wall %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{math.NaN(), 5}, 5}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

// TestBuild: the standard synthetic set gives known settings, intervals and paired differences.
func TestBuild(t *testing.T) {
	set := standardSet(t.TempDir())
	for _, f := range set {
		writeFakeRun(t, f)
	}
	rep, err := Read(dirsOf(set), Options{Pruning: true, RequireBaseline: true})
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	bySetting := map[string]*Setting{}
	for _, s := range rep.Settings {
		labels = append(labels, s.Label)
		bySetting[s.Label] = s
	}
	if want := "bear (lambda 0.25)|bear (lambda 0.5)|msl"; strings.Join(labels, "|") != want || rep.Baseline != "msl" {
		t.Fatalf("settings %q baseline %q, want %q and msl", labels, rep.Baseline, want)
	}
	msl, toy, l05 := bySetting["msl"], bySetting["bear (lambda 0.25)"], bySetting["bear (lambda 0.5)"]
	for _, tc := range []struct {
		name      string
		got, want Interval
	}{
		{"msl NDCG@10", msl.Metrics["NDCG@10"], wantCI(0.1, 0.2, 0.3)},
		{"msl HR@10", msl.Metrics["HR@10"], wantCI(0.2, 0.3, 0.4)},
		{"msl NDCG@1", msl.Metrics["NDCG@1"], wantCI(0.025, 0.05, 0.075)},
		{"bear NDCG@10", toy.Metrics["NDCG@10"], wantCI(0.15, 0.30, 0.35)},
		{"bear lambda 0.5 NDCG@10 (one seed)", l05.Metrics["NDCG@10"], wantCI(0.12)},
		{"msl pruning rate", msl.PrunedOfExact, wantCI(8.0/20, 6.0/20, 4.0/20)},
		{"msl pruned / users", msl.PrunedOfUsers, wantCI(8.0/50, 6.0/50, 4.0/50)},
		{"msl lost-hit rate", msl.LostHitRate, wantCI(10.0/20, 8.0/23, 6.0/26)},
		{"bear lost-hit rate", toy.LostHitRate, wantCI(6.0/17, 5.0/23, 3.0/24)},
		{"msl tokens/s (medians 200, 120, 97.5)", msl.TokensPerS, wantCI(200, 120, 97.5)},
		{"msl wall time", msl.WallS, wantCI(30, 30, 40)},
	} {
		if !sameIv(tc.got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
	if len(rep.Comparisons) != 2 {
		t.Fatalf("%d comparisons, want 2", len(rep.Comparisons))
	}
	c := rep.Comparisons[0]
	if c.Setting != "bear (lambda 0.25)" || strings.Join(c.Seeds, ",") != "1,2,3" ||
		!sameIv(c.NDCG10, wantCI(0.05, 0.10, 0.05)) || !sameIv(c.HR10, wantCI(0.02, 0.06, 0.02)) ||
		!sameIv(c.PrunedRate, wantCI(-0.2, -0.15, -0.15)) || !sameIv(c.LostHitRate, wantCI(6.0/17-0.5, 5.0/23-8.0/23, 3.0/24-6.0/26)) {
		t.Errorf("paired comparison %+v", c)
	}
	// NDCG@10: 0.0667 ± 0.0717 holds 0; pruning rate: -0.1667 ± 0.0717 does not.
	if !c.NDCG10.ContainsZero() || c.PrunedRate.ContainsZero() {
		t.Errorf("NDCG@10 interval %+v should contain 0, pruning interval %+v should not", c.NDCG10, c.PrunedRate)
	}
	if c := rep.Comparisons[1]; strings.Join(c.Seeds, ",") != "1" || !sameIv(c.NDCG10, wantCI(0.02)) || c.NDCG10.HasCI() {
		t.Errorf("one-pair comparison %+v", c)
	}
}

// TestReadErrors: every refused input names the folder or file and the reason.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(root string, set []fakeRun) []fakeRun // edits the set before writing
		after func(t *testing.T, set []fakeRun)          // edits the written folders
		o     Options
		want  []string
	}{
		{name: "missing metrics.json", after: func(t *testing.T, set []fakeRun) {
			os.Remove(filepath.Join(set[1].dir, "eval", "metrics.json"))
		}, want: []string{filepath.Join("msl-2", "eval", "metrics.json") + ": missing", "bear eval --model models/small --adapter", "--constrain before --pruning"}},
		{name: "eval folder under another name", o: Options{EvalSubdir: "evaluation"}, want: []string{filepath.Join("evaluation", "metrics.json") + ": missing"}},
		{name: "evaluated without --pruning", setup: edit(2, func(m *results.Metrics) { m.Pruning, m.Config.Pruning = nil, false }),
			want: []string{filepath.Join("msl-3", "eval", "metrics.json"), "without --pruning"}},
		{name: "other beams", setup: edit(4, func(m *results.Metrics) { m.Config.Beams = 5 }),
			want: []string{"beams 10", "beams 5", filepath.Join("bear-2", "eval"), "refusing to compare"}},
		{name: "other split", setup: edit(6, func(m *results.Metrics) { m.Config.SplitSHA256 = "other" }), want: []string{"split sha256 5p1i7", "split sha256 other"}},
		{name: "other users", setup: edit(3, func(m *results.Metrics) { m.Users = 40 }), want: []string{"users 50", "users 40"}},
		{name: "other constraint", setup: edit(3, func(m *results.Metrics) { m.Config.Constrain = "after" }), want: []string{"constrain before", "constrain after"}},
		{name: "other max_new_tokens", setup: edit(3, func(m *results.Metrics) { m.Config.MaxNewTokens = 0 }), want: []string{"max_new_tokens 128", "max_new_tokens 0"}},
		{name: "metric missing", setup: edit(0, func(m *results.Metrics) { delete(m.ItemMatch, "NDCG@5") }), want: []string{"no NDCG@5"}},
		{name: "unfinished run", after: func(t *testing.T, set []fakeRun) { os.RemoveAll(filepath.Join(set[0].dir, finalDir)) },
			want: []string{"msl-1: no final/", "--resume"}},
		{name: "not a run folder", after: func(t *testing.T, set []fakeRun) {
			os.RemoveAll(set[0].dir)
			os.MkdirAll(set[0].dir, 0o755)
		}, want: []string{"msl-1: neither a bear train run folder"}},
		{name: "same setting and seed twice", setup: func(root string, set []fakeRun) []fakeRun {
			dup := set[0]
			dup.dir = filepath.Join(root, "msl-copy")
			return append(set, dup)
		}, want: []string{"are both msl with seed 1"}},
		{name: "baseline absent", o: Options{Baseline: "lml", RequireBaseline: true}, want: []string{"--baseline lml: no such loss"}},
		{name: "baseline of several settings", o: Options{Baseline: "bear"}, want: []string{"several settings", "bear (lambda 0.25); bear (lambda 0.5)"}},
		{name: "no flags recorded", after: func(t *testing.T, set []fakeRun) {
			w, _ := trainlog.Open(filepath.Join(set[0].dir, logFile), 0)
			w.WriteStep(trainlog.Step{Step: 1, Loss: 1})
			w.Close()
		}, want: []string{"msl-1: no record of the run's flags"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			set := standardSet(root)
			if tc.setup != nil {
				set = tc.setup(root, set)
			}
			for _, f := range set {
				writeFakeRun(t, f)
			}
			if tc.after != nil {
				tc.after(t, set)
			}
			o := tc.o
			o.Pruning = true
			_, err := Read(dirsOf(set), o)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// edit returns a set edit that changes run i's metrics.json.
func edit(i int, change func(m *results.Metrics)) func(string, []fakeRun) []fakeRun {
	return func(_ string, set []fakeRun) []fakeRun {
		set[i].edit = change
		return set
	}
}

// TestWithoutPruning: --pruning=false accepts evaluations without the analysis and leaves the
// rate out; an absent default baseline leaves the comparison out.
func TestWithoutPruning(t *testing.T) {
	set := standardSet(t.TempDir())[3:] // BEAR only: no msl baseline
	set[0].edit = func(m *results.Metrics) { m.Pruning, m.Config.Pruning = nil, false }
	for _, f := range set {
		writeFakeRun(t, f)
	}
	if _, err := Read(dirsOf(set), Options{Pruning: true}); err == nil {
		t.Errorf("an evaluation without --pruning was accepted with Pruning")
	}
	rep, err := Read(dirsOf(set), Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := string(rep.Markdown())
	if rep.Baseline != "" || strings.Contains(md, "Incorrect pruning") || !strings.Contains(md, "No baseline setting") {
		t.Errorf("baseline %q; report:\n%s", rep.Baseline, md)
	}
}

// TestPlainEvalFolder: a folder with metrics.json only is its own setting, labelled by its
// adapter, without seed or training figures.
func TestPlainEvalFolder(t *testing.T) {
	root := t.TempDir()
	set := standardSet(root)[:3]
	for _, f := range set {
		writeFakeRun(t, f)
	}
	plain := filepath.Join(root, "plain-eval")
	writeMetricsFile(t, plain, testMetrics(fakeRun{dir: "runs/base", ndcg10: 0.05, hr10: 0.1, pruned: 10, inExact: 20}))
	rep, err := Read(append(dirsOf(set), plain), Options{Pruning: true})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Settings[0]
	if s.Label != "eval runs/base/final" || s.Training() || len(s.Runs) != 1 || !sameIv(s.Metrics["NDCG@10"], wantCI(0.05)) ||
		s.TokensPerS.N != 0 || len(rep.Comparisons) != 0 {
		t.Errorf("plain evaluation setting %+v, comparisons %+v", s, rep.Comparisons)
	}
	if _, err := Read(append(dirsOf(set), plain), Options{Baseline: "eval runs/base/final"}); err == nil || !strings.Contains(err.Error(), "no seeds to pair") {
		t.Errorf("a plain evaluation as baseline: %v", err)
	}
}

// TestCheckpointFlags: a log without recorded flags takes the identity of its checkpoint.
func TestCheckpointFlags(t *testing.T) {
	root := t.TempDir()
	set := standardSet(root)[:3]
	for _, f := range set {
		writeFakeRun(t, f)
	}
	w, _ := trainlog.Open(filepath.Join(set[0].dir, logFile), 0)
	w.WriteStep(trainlog.Step{Step: 1, Loss: 1, TokensPerS: 10, ElapsedS: 1})
	w.Close()
	meta := `{"format":"bear-train-checkpoint/1","step":1,"identity":{"--loss":"msl","--seed":"1","--lr":"0.001"}}`
	ts := []hf.WriteTensor{hf.Float32Tensor("param/x", hf.F32, []int64{1}, []float32{0})}
	if err := hf.WriteSafetensors(filepath.Join(set[0].dir, checkpointFile), ts, map[string]string{checkpointMetaKey: meta}); err != nil {
		t.Fatal(err)
	}
	rep, err := Read(dirsOf(set[:1]), Options{Pruning: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Runs[0]
	if !r.FlagsFromCheckpoint || r.Flags["--lr"] != "0.001" || r.Seed != "1" || r.Setting != "msl" || rep.Baseline != "msl" {
		t.Errorf("run from checkpoint flags: %+v", r)
	}
	if md := string(rep.Markdown()); !strings.Contains(md, "flags from the checkpoint's identity") {
		t.Errorf("report does not say where the flags came from:\n%s", md)
	}
}

// TestGolden: the report of the standard set, in folders given by relative paths, equals the
// golden file (go test ./tools/bear/report -run Golden -update rewrites it), twice in a row; the plots
// are PNGs of the planned sizes.
func TestGolden(t *testing.T) {
	golden, err := filepath.Abs(filepath.Join("..", "..", "..", "testdata", "report", "report.golden.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	set := standardSet("runs")
	for _, f := range set {
		writeFakeRun(t, f)
	}
	var outs [][]byte
	for range 2 {
		rep, err := Read(dirsOf(set), Options{Pruning: true})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, rep.Markdown())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two reports of the same runs differ")
	}
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, outs[0], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./tools/bear/report -run Golden -update writes it)", err)
	}
	if !bytes.Equal(outs[0], want) {
		t.Errorf("report.md differs from %s (rerun with -update if the change is intended):\n%s", golden, outs[0])
	}
}

func TestWriteFiles(t *testing.T) {
	set := standardSet(t.TempDir())
	for _, f := range set {
		writeFakeRun(t, f)
	}
	rep, err := Read(dirsOf(set), Options{Pruning: true})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := rep.WriteFiles(out); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		w, h int
	}{{nDCGFile, barWidthPx*3 + 120, barHeightPx}, {curvesFile, curveColumnWidth * 3, curvePanelHeight * 2}} {
		f, err := os.Open(filepath.Join(out, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() != tc.w || img.Bounds().Dy() != tc.h {
			t.Errorf("%s: %v (%v), want a %dx%d PNG", tc.name, img.Bounds(), err, tc.w, tc.h)
		}
	}
	if md, err := os.ReadFile(filepath.Join(out, MarkdownFile)); err != nil || !bytes.Equal(md, rep.Markdown()) {
		t.Errorf("report.md: %v", err)
	}
}

// TestUndefinedPruningRate: a run with no target in the exact top-B has no pruning rate; it is
// left out of its setting's mean and of the pairs, and the report says so.
func TestUndefinedPruningRate(t *testing.T) {
	set := standardSet(t.TempDir())[:6]
	set[2].pruned, set[2].inExact = 0, 0 // msl seed 3
	for _, f := range set {
		writeFakeRun(t, f)
	}
	rep, err := Read(dirsOf(set), Options{Pruning: true})
	if err != nil {
		t.Fatal(err)
	}
	msl, c := rep.Settings[1], rep.Comparisons[0]
	if !sameIv(msl.PrunedOfExact, wantCI(8.0/20, 6.0/20)) || !sameIv(c.PrunedRate, wantCI(-0.2, -0.15)) || len(c.Seeds) != 3 {
		t.Errorf("msl rate %+v, paired %+v over seeds %v", msl.PrunedOfExact, c.PrunedRate, c.Seeds)
	}
	md := string(rep.Markdown())
	for _, want := range []string{"| msl | 3 | 0.3500 ± 0.6353 (2 of 3 runs) |", "undefined for a run whose denominator is 0 (no target in the exact top-B"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
