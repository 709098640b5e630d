package report

import (
	"bytes"
	"fmt"
	"strings"
)

// Files of the report folder.
const (
	MarkdownFile = "report.md"
	curvesFile   = "curves.png" // training curves, one column of panels per setting
	nDCGFile     = "ndcg10.png" // NDCG@10 per setting with its interval
)

// Markdown renders report.md. It depends only on the runs (sorted, fixed formats, no clock),
// so rerunning the report on the same folders gives the same bytes.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	r.writeHeader(&b)
	if len(r.Notes) > 0 {
		b.Write(bytes.TrimRight(r.Notes, "\n"))
		b.WriteString("\n\n")
	}
	r.writeMetrics(&b)
	if r.Pruning {
		r.writePruning(&b)
	}
	r.writeTraining(&b)
	r.writeComparisons(&b)
	r.writeProvenance(&b)
	return b.Bytes()
}

func (r *Report) writeHeader(b *bytes.Buffer) {
	m := r.Runs[0].Metrics
	match := "item identity"
	if primary(m) == "official_match" {
		match = "the official string match"
	}
	fmt.Fprintf(b, "# bear report: %d runs in %d settings\n\n", len(r.Runs), len(r.Settings))
	fmt.Fprintf(b, "Written by `bear report`. Every value over seeds is the mean ± the half-width of its %g%% confidence "+
		"interval (Student's t with n − 1 degrees of freedom); \"(n = 1)\" marks a value of one run, which has no interval.\n\n",
		confidence*100)
	fmt.Fprintf(b, "Evaluation: %s, split %s, %d users, %d beams, constraint %s the softmax, max_new_tokens %d; metrics on %s.\n\n",
		m.Config.Dataset, m.Config.SplitFile, m.Users, m.Config.Beams, m.Config.Constrain, m.Config.MaxNewTokens, match)
}

func (r *Report) writeMetrics(b *bytes.Buffer) {
	b.WriteString("## Ranking metrics\n\n")
	tableHead(b, append([]string{"setting", "seeds"}, metricKeys...)...)
	for _, s := range r.Settings {
		row := []string{s.Label, fmt.Sprint(len(s.Runs))}
		for _, k := range metricKeys {
			row = append(row, fmtIv(s.Metrics[k], false))
		}
		tableRow(b, row...)
	}
	fmt.Fprintf(b, "\n![NDCG@10 per setting, with its %g%% interval](%s)\n\n", confidence*100, nDCGFile)
}

func (r *Report) writePruning(b *bytes.Buffer) {
	lp := optF(r.Runs[0].Metrics.Config.ExactLengthPenalty)
	b.WriteString("## Incorrect pruning\n\n")
	fmt.Fprintf(b, "The incorrect-pruning rate is the share of the test targets in the exact top-B items (by full-sequence "+
		"score, length penalty %s) that beam search pruned: `incorrectly_pruned / target_in_exact_top_b` of `bear eval --pruning`. "+
		"The next column divides the same count by all users evaluated. The lost-hit rate needs no exact search: of the targets "+
		"that beam search returned or would have returned had it kept their prefixes (their own final score beats the last "+
		"returned hypothesis), the share it pruned: `lost_hits / (target_returned_by_beam + lost_hits)`.\n\n", lp)
	tableHead(b, "setting", "seeds", "incorrect-pruning rate", "pruned / users", "lost-hit rate")
	undefined := false
	for _, s := range r.Settings {
		rate := fmtIv(s.PrunedOfExact, false)
		if n := s.PrunedOfExact.N; n < len(s.Runs) {
			rate += fmt.Sprintf(" (%d of %d runs)", n, len(s.Runs))
			undefined = true
		}
		lost := fmtIv(s.LostHitRate, false)
		if n := s.LostHitRate.N; n < len(s.Runs) {
			lost += fmt.Sprintf(" (%d of %d runs)", n, len(s.Runs))
			undefined = true
		}
		tableRow(b, s.Label, fmt.Sprint(len(s.Runs)), rate, fmtIv(s.PrunedOfUsers, false), lost)
	}
	if undefined {
		b.WriteString("\nA rate is undefined for a run whose denominator is 0 (no target in the exact top-B; no target returned or lost); such runs are left out of its mean.\n")
	}
	b.WriteString("\n")
}

func (r *Report) writeTraining(b *bytes.Buffer) {
	b.WriteString("## Training\n\n")
	if r.curvePanels() == nil {
		b.WriteString("No bear train runs among the folders (evaluation folders only).\n\n")
		return
	}
	b.WriteString("Tokens/s is each run's median over its optimizer steps; wall time runs from the start of the training " +
		"process to its last step (graph building and evaluations during training included; the processes of a resumed " +
		"run are summed).\n\n")
	tableHead(b, "setting", "seeds", "steps", "tokens/s", "wall time (s)")
	for _, s := range r.Settings {
		if !s.Training() {
			continue
		}
		tableRow(b, s.Label, fmt.Sprint(len(s.Runs)), fmt.Sprint(s.Steps), fmtIvPrec(s.TokensPerS, 1), fmtIvPrec(s.WallS, 1))
	}
	fmt.Fprintf(b, "\n![Training curves: loss and pruned share per step, the mean over seeds in bold](%s)\n\n", curvesFile)
}

// fmtIv formats an interval with 4 decimals; signed for differences.
func fmtIv(iv Interval, signed bool) string {
	f := "%.4f"
	if signed {
		f = "%+.4f"
	}
	switch {
	case iv.N == 0:
		return "—"
	case !iv.HasCI():
		return fmt.Sprintf(f+" (n = 1)", iv.Mean)
	}
	return fmt.Sprintf(f+" ± %.4f", iv.Mean, iv.Half)
}

func fmtIvPrec(iv Interval, prec int) string {
	switch {
	case iv.N == 0:
		return "—"
	case !iv.HasCI():
		return fmt.Sprintf("%.*f (n = 1)", prec, iv.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", prec, iv.Mean, prec, iv.Half)
}

func tableHead(b *bytes.Buffer, cols ...string) {
	tableRow(b, cols...)
	b.WriteString("|" + strings.Repeat("---|", len(cols)) + "\n")
}

func tableRow(b *bytes.Buffer, cells ...string) {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}
