package report

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/bearrec/bear/runtime/train/trainlog"
)

// DefaultBaseline is the loss the other settings are compared with.
const DefaultBaseline = "msl"

// Options configure a report.
type Options struct {
	EvalSubdir string // subfolder of a run folder holding its evaluation ("": DefaultEvalSubdir)
	// Baseline is the loss ("msl") or the whole setting label the other settings are paired
	// with ("": DefaultBaseline). With RequireBaseline a baseline absent from the runs is an
	// error; without, the report has no paired comparison.
	Baseline        string
	RequireBaseline bool
	Pruning         bool // require --pruning evaluations and report the incorrect-pruning rate
}

// Setting is the runs of one setting (seeds) and their summaries over seeds.
type Setting struct {
	Label, Loss string
	Runs        []*Run              // sorted by seed
	Metrics     map[string]Interval // "NDCG@10", ... over seeds
	// PrunedOfExact is the incorrect-pruning rate: the share of the targets in the exact top-B
	// (by full-sequence score) that beam search pruned; PrunedOfUsers the same count over all
	// users evaluated.
	PrunedOfExact, PrunedOfUsers Interval
	// LostHitRate is the share of the targets beam search would have returned had it kept
	// their prefixes (returned + lost hits) that it pruned: lost_hits / (returned + lost_hits).
	LostHitRate Interval
	TokensPerS  Interval // median training tokens/s of each run
	WallS       Interval // training wall time of each run, seconds
	Steps       int      // optimizer steps of its longest run
}

// Training reports whether the setting's runs are bear train runs.
func (s *Setting) Training() bool { return s.Loss != "" }

// Comparison is a setting paired with the baseline by seed: each value is the interval of
// the per-seed differences setting - baseline (a paired t interval).
type Comparison struct {
	Setting                               string
	Seeds                                 []string // the seeds run by both, in the settings' order
	NDCG10, HR10, PrunedRate, LostHitRate Interval
}

// Report is everything report.md and the plots show.
type Report struct {
	Runs        []*Run     // sorted by setting and seed
	Settings    []*Setting // sorted by label
	Baseline    string     // label of the baseline setting; "" when there is none
	Comparisons []Comparison
	Pruning     bool
	// Notes is Markdown written by hand about the runs (the setting, its limits), placed under
	// the header as given; bear report does not interpret it.
	Notes []byte
}

// Read reads the run folders and builds their report.
func Read(dirs []string, o Options) (*Report, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no run folders")
	}
	var runs []*Run
	for _, d := range dirs {
		r, err := readRun(d, o.EvalSubdir)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return build(runs, o)
}

// build checks that the runs can be compared, groups them into settings and computes every
// summary and comparison.
func build(runs []*Run, o Options) (*Report, error) {
	if len(runs) == 0 {
		return nil, errors.New("no runs")
	}
	if err := checkComparable(runs, o.Pruning); err != nil {
		return nil, err
	}
	labelSettings(runs)
	sortRuns(runs)
	if err := checkDistinct(runs); err != nil {
		return nil, err
	}
	rep := &Report{Runs: runs, Pruning: o.Pruning}
	for _, r := range runs {
		if n := len(rep.Settings); n == 0 || rep.Settings[n-1].Label != r.Setting {
			rep.Settings = append(rep.Settings, &Setting{Label: r.Setting, Loss: r.Loss})
		}
		s := rep.Settings[len(rep.Settings)-1]
		s.Runs = append(s.Runs, r)
	}
	for _, s := range rep.Settings {
		summarise(s)
	}
	base, err := findBaseline(rep.Settings, o)
	if err != nil || base == nil {
		return rep, err
	}
	rep.Baseline = base.Label
	for _, s := range rep.Settings {
		if s != base && s.Training() {
			rep.Comparisons = append(rep.Comparisons, compare(s, base))
		}
	}
	return rep, nil
}

// summarise computes a setting's intervals over its runs.
func summarise(s *Setting) {
	s.Metrics = map[string]Interval{}
	for _, k := range metricKeys {
		s.Metrics[k] = meanCI(collect(s.Runs, func(r *Run) float64 { return r.Metrics.Headline()[k] }))
	}
	s.PrunedOfExact = meanCI(collect(s.Runs, prunedOfExact))
	s.PrunedOfUsers = meanCI(collect(s.Runs, prunedOfUsers))
	s.LostHitRate = meanCI(collect(s.Runs, lostHitRate))
	s.TokensPerS = meanCI(collect(s.Runs, tokensPerS))
	s.WallS = meanCI(collect(s.Runs, wallSeconds))
	for _, r := range s.Runs {
		if n := len(r.Steps); n > 0 {
			s.Steps = max(s.Steps, r.Steps[n-1].Step)
		}
	}
}

func collect(runs []*Run, value func(*Run) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = value(r)
	}
	return out
}

// prunedOfExact is the run's incorrectly pruned targets over its targets in the exact top-B;
// NaN without a pruning analysis or with no target in the exact top-B.
func prunedOfExact(r *Run) float64 {
	p := r.Metrics.Pruning
	if p == nil || p.InExact == 0 {
		return math.NaN()
	}
	return float64(p.Pruned) / float64(p.InExact)
}

func prunedOfUsers(r *Run) float64 {
	p := r.Metrics.Pruning
	if p == nil || p.Users == 0 {
		return math.NaN()
	}
	return float64(p.Pruned) / float64(p.Users)
}

// lostHitRate is the run's lost hits over its returned targets plus lost hits; NaN without a
// pruning analysis or with neither.
func lostHitRate(r *Run) float64 {
	p := r.Metrics.Pruning
	if p == nil || p.InBeam+p.LostHits == 0 {
		return math.NaN()
	}
	return float64(p.LostHits) / float64(p.InBeam+p.LostHits)
}

// tokensPerS is the median tokens/s of the run's steps (NaN for an evaluation folder).
func tokensPerS(r *Run) float64 {
	return median(collectSteps(r.Steps, func(s trainlog.Step) float64 { return s.TokensPerS }))
}

func collectSteps(steps []trainlog.Step, value func(trainlog.Step) float64) []float64 {
	out := make([]float64, len(steps))
	for i, s := range steps {
		out[i] = value(s)
	}
	return out
}

// wallSeconds is the run's training wall time: elapsed_s counts from the start of each process
// (a resume starts again from 0), so the time is the sum over the processes of the elapsed_s of
// their last step. NaN for an evaluation folder.
func wallSeconds(r *Run) float64 {
	if len(r.Steps) == 0 {
		return math.NaN()
	}
	total, last := 0.0, 0.0
	for _, s := range r.Steps {
		if math.IsNaN(s.ElapsedS) {
			continue
		}
		if s.ElapsedS < last { // a new process: close the previous one
			total += last
		}
		last = s.ElapsedS
	}
	return total + last
}

// findBaseline returns the setting named by o.Baseline (a whole label, or a loss with one
// setting), nil when absent and not required.
func findBaseline(settings []*Setting, o Options) (*Setting, error) {
	name := o.Baseline
	if name == "" {
		name = DefaultBaseline
	}
	var byLoss, labels []string
	var match *Setting
	for _, s := range settings {
		labels = append(labels, s.Label)
		if s.Label == name {
			match = s
		} else if s.Loss == name {
			byLoss = append(byLoss, s.Label)
			if match == nil {
				match = s
			}
		}
	}
	switch {
	case match != nil && match.Label != name && len(byLoss) > 1:
		return nil, fmt.Errorf("--baseline %s: the runs of that loss form several settings (%s): name one of them whole", name, strings.Join(byLoss, "; "))
	case match != nil && !match.Training():
		return nil, fmt.Errorf("--baseline %s: a plain evaluation folder has no seeds to pair", name)
	case match == nil && o.RequireBaseline:
		return nil, fmt.Errorf("--baseline %s: no such loss or setting among the runs (settings: %s)", name, strings.Join(labels, "; "))
	}
	return match, nil
}

// compare pairs s with the baseline by seed.
func compare(s, base *Setting) Comparison {
	byseed := map[string]*Run{}
	for _, r := range base.Runs {
		byseed[r.Seed] = r
	}
	c := Comparison{Setting: s.Label}
	var dn, dh, dp, dl []float64
	for _, r := range s.Runs {
		b, ok := byseed[r.Seed]
		if !ok {
			continue
		}
		c.Seeds = append(c.Seeds, r.Seed)
		dn = append(dn, r.Metrics.Headline()["NDCG@10"]-b.Metrics.Headline()["NDCG@10"])
		dh = append(dh, r.Metrics.Headline()["HR@10"]-b.Metrics.Headline()["HR@10"])
		dp = append(dp, prunedOfExact(r)-prunedOfExact(b))
		dl = append(dl, lostHitRate(r)-lostHitRate(b))
	}
	c.NDCG10, c.HR10, c.PrunedRate, c.LostHitRate = meanCI(dn), meanCI(dh), meanCI(dp), meanCI(dl)
	return c
}
