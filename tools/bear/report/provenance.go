package report

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

func (r *Report) writeComparisons(b *bytes.Buffer) {
	if r.Baseline == "" {
		b.WriteString("## Paired comparison\n\nNo baseline setting among the runs (`--baseline`): no paired comparison.\n\n")
		return
	}
	fmt.Fprintf(b, "## Paired comparison with %s\n\n", r.Baseline)
	fmt.Fprintf(b, "Each value is the mean over seeds of (setting − %s) between runs of the same seed (the same data order, "+
		"LoRA initialisation and dropout masks), ± the half-width of its paired t %g%% interval.\n\n", r.Baseline, confidence*100)
	cols := []string{"setting", "seeds paired", "Δ NDCG@10", "Δ HR@10"}
	if r.Pruning {
		cols = append(cols, "Δ incorrect-pruning rate", "Δ lost-hit rate")
	}
	tableHead(b, cols...)
	for _, c := range r.Comparisons {
		row := []string{c.Setting, seedList(c.Seeds), fmtIv(c.NDCG10, true), fmtIv(c.HR10, true)}
		if r.Pruning {
			row = append(row, fmtIv(c.PrunedRate, true), fmtIv(c.LostHitRate, true))
		}
		tableRow(b, row...)
	}
	b.WriteString("\n")
	for _, c := range r.Comparisons {
		paired := len(c.Seeds) > 0
		fmt.Fprintf(b, "- %s − %s: NDCG@10 %s; HR@10 %s", c.Setting, r.Baseline, verdict(c.NDCG10, paired), verdict(c.HR10, paired))
		if r.Pruning {
			fmt.Fprintf(b, "; incorrect-pruning rate %s; lost-hit rate %s", verdict(c.PrunedRate, paired), verdict(c.LostHitRate, paired))
		}
		b.WriteString(".\n")
	}
	b.WriteString("\n")
}

func seedList(seeds []string) string {
	if len(seeds) == 0 {
		return "none"
	}
	return strings.Join(seeds, ", ")
}

// verdict says what a paired interval shows; paired tells an empty interval of runs without
// a common seed from one whose values are undefined (no target in the exact top-B).
func verdict(iv Interval, paired bool) string {
	switch {
	case iv.N == 0 && !paired:
		return "not compared (no seed in common)"
	case iv.N == 0:
		return "undefined (no target in the exact top-B of these runs)"
	case !iv.HasCI():
		return fmt.Sprintf("%+.4f from one pair, no interval", iv.Mean)
	case iv.ContainsZero():
		return fmt.Sprintf("%+.4f, interval [%+.4f, %+.4f] contains 0: no difference shown", iv.Mean, iv.Mean-iv.Half, iv.Mean+iv.Half)
	}
	return fmt.Sprintf("%+.4f, interval [%+.4f, %+.4f] excludes 0", iv.Mean, iv.Mean-iv.Half, iv.Mean+iv.Half)
}

// writeProvenance lists the evaluation settings and, for every run, how to make it again.
func (r *Report) writeProvenance(b *bytes.Buffer) {
	b.WriteString("## How these runs were made\n\n### Evaluation (the same for every run)\n\n")
	tableHead(b, "setting", "value")
	m := r.Runs[0].Metrics
	for _, s := range evalSettings {
		if s.pruning && !r.Pruning {
			continue
		}
		tableRow(b, s.name, "`"+s.value(m)+"`")
	}
	tableRow(b, "pruning analysis", strconv.FormatBool(m.Pruning != nil))
	b.WriteString("\n### Runs\n\n")
	tableHead(b, "folder", "setting", "loss", "seed", "steps", "evaluation", "model evaluated (selection)")
	for _, run := range r.Runs {
		steps := "—"
		if n := len(run.Steps); n > 0 {
			steps = fmt.Sprint(run.Steps[n-1].Step)
		}
		tableRow(b, "`"+run.Dir+"`", run.Setting, orDash(run.Loss), orDash(run.Seed), steps, "`"+run.EvalDir+"`", orDash(run.ModelUsed))
	}
	b.WriteString("\n")
	for _, run := range r.Runs {
		writeRunCommands(b, run)
	}
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// writeRunCommands writes the commands that made run: bear train with every recorded flag,
// then bear eval with the settings its metrics.json records, and the inputs' content hashes.
func writeRunCommands(b *bytes.Buffer, run *Run) {
	fmt.Fprintf(b, "#### `%s`\n\n```sh\n", run.Dir)
	var hashes []string
	if run.IsTraining() {
		var args []string
		for _, k := range sortedKeys(run.Flags) {
			switch v := run.Flags[k]; {
			case strings.Contains(k, " "): // "--model (content sha256)"
				hashes = append(hashes, fmt.Sprintf("- `%s`: `%s`", k, v))
			case v != "":
				args = append(args, k+" "+shellQuote(v))
			}
		}
		fmt.Fprintf(b, "bear train %s\n", strings.Join(args, " "))
		if run.FlagsFromCheckpoint {
			hashes = append(hashes, "- flags from the checkpoint's identity (the log predates recorded flags): the paths (--model, --data, --out, --tokenizer) are not recorded")
		}
	}
	fmt.Fprintf(b, "%s\n```\n\n", evalCommand(run))
	c := run.Metrics.Config
	hashes = append(hashes, fmt.Sprintf("- evaluated model (content sha256): `%s`", c.ModelSHA256))
	if c.AdapterSHA256 != "" {
		hashes = append(hashes, fmt.Sprintf("- evaluated adapter sha256: `%s`", c.AdapterSHA256))
	}
	if c.ShardCount > 1 {
		hashes = append(hashes, fmt.Sprintf("- evaluated in %d shards (`bear eval --shard i/%d`), then merged with `bear eval --merge`", c.ShardCount, c.ShardCount))
	}
	b.WriteString(strings.Join(hashes, "\n") + "\n\n")
}

// evalCommand rebuilds the bear eval command of run's metrics.json.
func evalCommand(run *Run) string {
	c := run.Metrics.Config
	args := []string{"bear eval", "--model", shellQuote(c.Model)}
	if c.Adapter != "" {
		args = append(args, "--adapter", shellQuote(c.Adapter))
	}
	args = append(args, "--data", shellQuote(c.Data), "--split", shellQuote(c.SplitFile))
	if c.Limit > 0 {
		args = append(args, "--limit", strconv.Itoa(c.Limit))
	}
	args = append(args, "--beams", strconv.Itoa(c.Beams), "--constrain", c.Constrain, "--max-new-tokens", strconv.Itoa(c.MaxNewTokens))
	if c.Pruning {
		args = append(args, "--pruning", "--exact-length-penalty", optF(c.ExactLengthPenalty), "--max-frontier", strconv.Itoa(c.MaxFrontier))
	}
	if primary(run.Metrics) == "official_match" {
		args = append(args, "--official-match")
	}
	return strings.Join(append(args, "--out", shellQuote(run.EvalDir)), " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./,:=+@%", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
