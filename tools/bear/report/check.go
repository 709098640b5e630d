package report

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/bearrec/bear/runtime/evaluate/results"
)

// evalSetting is one setting of an evaluation that must be equal for runs to be compared.
type evalSetting struct {
	name    string
	pruning bool // compared only when the report shows the pruning rate
	value   func(m *results.Metrics) string
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// evalSettings are the users, split and decoding settings: the model and adapter may differ
// (that is what the report compares), paths, sharding, batch size and KV cache may too (they
// do not change the numbers).
var evalSettings = []evalSetting{
	{"dataset", false, func(m *results.Metrics) string { return m.Config.Dataset }},
	{"split file", false, func(m *results.Metrics) string { return m.Config.SplitFile }},
	{"split sha256", false, func(m *results.Metrics) string { return m.Config.SplitSHA256 }},
	{"catalogue sha256", false, func(m *results.Metrics) string { return m.Config.CatalogueSHA256 }},
	{"tokenizer sha256", false, func(m *results.Metrics) string { return m.Config.TokenizerSHA256 }},
	{"limit", false, func(m *results.Metrics) string { return strconv.Itoa(m.Config.Limit) }},
	{"selected users", false, func(m *results.Metrics) string { return strconv.Itoa(m.Config.SelectedUsers) }},
	{"users", false, func(m *results.Metrics) string { return strconv.Itoa(m.Users) }},
	{"beams", false, func(m *results.Metrics) string { return strconv.Itoa(m.Config.Beams) }},
	{"return", false, func(m *results.Metrics) string { return strconv.Itoa(m.Config.Return) }},
	{"constrain", false, func(m *results.Metrics) string { return m.Config.Constrain }},
	{"length penalty", false, func(m *results.Metrics) string { return ftoa(m.Config.LengthPenalty) }},
	{"stop rule", false, func(m *results.Metrics) string { return m.Config.StopRule }},
	{"max_new_tokens", false, func(m *results.Metrics) string { return strconv.Itoa(m.Config.MaxNewTokens) }},
	{"primary metrics", false, func(m *results.Metrics) string { return primary(m) }},
	{"exact length penalty", true, func(m *results.Metrics) string { return optF(m.Config.ExactLengthPenalty) }},
	{"max frontier", true, func(m *results.Metrics) string { return strconv.Itoa(m.Config.MaxFrontier) }},
}

func primary(m *results.Metrics) string {
	if m.Primary == "official_match" {
		return m.Primary
	}
	return "item_match"
}

func optF(p *float64) string {
	if p == nil {
		return "(none)"
	}
	return ftoa(*p)
}

// checkComparable refuses runs whose evaluations differ in users, split or decoding, and, when
// pruning is asked, an evaluation made without --pruning.
func checkComparable(runs []*Run, pruning bool) error {
	for _, r := range runs {
		if pruning && (r.Metrics.Pruning == nil || !r.Metrics.Config.Pruning) {
			return fmt.Errorf("%s: evaluated without --pruning: rerun bear eval with --pruning, or pass --pruning=false to leave the pruning rate out",
				metricsPath(r))
		}
	}
	first := runs[0]
	for _, r := range runs[1:] {
		for _, s := range evalSettings {
			if s.pruning && !pruning {
				continue
			}
			if a, b := s.value(first.Metrics), s.value(r.Metrics); a != b {
				return fmt.Errorf("the runs were evaluated differently: %s has %s %s, %s has %s %s; refusing to compare them (evaluate every run on the same users with the same settings)",
					metricsPath(first), s.name, a, metricsPath(r), s.name, b)
			}
		}
	}
	return nil
}

func metricsPath(r *Run) string { return filepath.Join(r.EvalDir, results.MetricsName) }
