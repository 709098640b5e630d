package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/bearrec/bear/tools/bear/report"
)

func init() {
	register(&command{name: "report", summary: "compare finished train/eval runs: report.md with metrics over seeds, intervals, pruning, plots", run: func(args []string) error {
		return reportMain(args, os.Stderr)
	}})
}

const reportUsage = `RUN_DIR... --out DIR [--baseline msl] [--eval-subdir eval] [--pruning=false] [--notes FILE] [--force]

Each RUN_DIR is the --out of a finished bear train run, evaluated with
  bear eval --model BASE --adapter RUN_DIR/best --data DATA --constrain before --pruning --out RUN_DIR/eval
(BASE: the model the run trained from; every run alike; RUN_DIR/best is the epoch the run's
--valid rows chose, RUN_DIR/final the last one, for runs without validation), or a bear eval
folder. The report says which model each evaluation used and why; the test split never
selects. With the
constraint before the softmax the exact search behind the pruning rate prunes well and stays
within its default memory bound (bear eval --exact-memory): 30 Office users took 26 s and 1.6 GB
on a trained tiny model, 56 s and 2.8 GB on a random small one. With --constrain after it
keeps about 2 100 rows per user open and can stop at the bound, naming the flag to raise.
Writes DIR/report.md, DIR/ndcg10.png and DIR/curves.png. --notes FILE puts a Markdown
file of your own (what the runs are, what they can show) under the report's header.`

// reportMain reads the run folders and writes the report folder.
func reportMain(args []string, stderr io.Writer) error {
	fs := newFlagSet("report", reportUsage)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "report folder to write (required; built aside and swapped in whole)")
	baseline := fs.String("baseline", report.DefaultBaseline, "loss (or whole setting label) every other setting is paired with by seed")
	evalSubdir := fs.String("eval-subdir", report.DefaultEvalSubdir, "subfolder of each RUN_DIR holding its bear eval output (metrics.json)")
	pruning := fs.Bool("pruning", true, "require evaluations made with bear eval --pruning and report the incorrect-pruning rate (false: leave it out)")
	notesFile := fs.String("notes", "", "Markdown file placed under the report's header (the setting, its limits)")
	force := fs.Bool("force", false, "replace a non-empty --out whole")
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := checkReportFlags(dirs, *out, *evalSubdir, *force); err != nil {
		return err
	}
	notes, err := readNotes(*notesFile)
	if err != nil {
		return err
	}
	rep, err := report.Read(dirs, report.Options{EvalSubdir: *evalSubdir, Baseline: *baseline,
		RequireBaseline: isFlagSet(fs, "baseline"), Pruning: *pruning})
	if err != nil {
		return err
	}
	rep.Notes = notes
	if err := writeOutDir(*out, *force, rep.WriteFiles); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bear report: wrote %s (%d runs in %d settings)\n", filepath.Join(*out, report.MarkdownFile), len(rep.Runs), len(rep.Settings))
	return nil
}

// checkReportFlags refuses what would fail after reading the runs: no run folder, no --out, an
// --eval-subdir that leaves the run folder, or an --out that is, holds or lies inside a run.
func checkReportFlags(dirs []string, out, evalSubdir string, force bool) error {
	switch {
	case len(dirs) == 0:
		return errors.New("give the run folders as arguments (bear report RUN_DIR... --out DIR)")
	case out == "":
		return errors.New("--out is required")
	case evalSubdir == "" || filepath.IsAbs(evalSubdir) || !filepath.IsLocal(evalSubdir):
		return fmt.Errorf("--eval-subdir %q: want a subfolder name inside each run folder", evalSubdir)
	}
	return checkOutDir(out, force, dirs...)
}

// readNotes reads the --notes file: UTF-8 text with something in it ("" reads nothing).
func readNotes(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("--notes: %w", err)
	case !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0:
		return nil, fmt.Errorf("--notes %s: not UTF-8 text", path)
	case len(bytes.TrimSpace(b)) == 0:
		return nil, fmt.Errorf("--notes %s: the file is empty", path)
	}
	return b, nil
}

// parseInterleaved parses flags placed before, between or after the positional arguments
// (the flag package stops at the first positional one) and returns the positional ones; after
// "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}
