package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bearrec/bear/runtime/train/trainlog"
)

func init() {
	register(&command{name: "plot", summary: "draw a training log (train.jsonl) as a PNG: loss, pruned share, NDCG@10", run: func(args []string) error {
		return plotMain(args, os.Stderr)
	}})
}

// plotMain reads the log of `bear train` and writes its panels as one PNG.
func plotMain(args []string, stderr io.Writer) error {
	fs := newFlagSet("plot", "--log FILE --out PNG [--title S]")
	logPath := fs.String("log", "", "training log written by bear train (train.jsonl; required)")
	out := fs.String("out", "", "PNG file to write (required; its folder must exist)")
	title := fs.String("title", "", "title above the panels (default: the --log path)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkPlotFlags(fs.Args(), *logPath, *out); err != nil {
		return err
	}
	if !isFlagSet(fs, "title") {
		*title = *logPath
	}
	steps, evals, err := trainlog.Read(*logPath)
	if err != nil {
		return err
	}
	if err := trainlog.Plot(steps, evals, *title, *out); err != nil {
		return fmt.Errorf("%s: %w", *logPath, err)
	}
	fmt.Fprintf(stderr, "bear plot: wrote %s (%d steps, %d evaluations)\n", *out, len(steps), len(evals))
	return nil
}

// checkPlotFlags rejects what would fail only after reading the log: missing or stray
// arguments, a log that is not a file, an output that is not a .png in an existing folder.
func checkPlotFlags(rest []string, logPath, out string) error {
	if len(rest) != 0 {
		return fmt.Errorf("unexpected arguments %q", rest)
	}
	if logPath == "" {
		return fmt.Errorf("--log is required")
	}
	if out == "" {
		return fmt.Errorf("--out is required")
	}
	if st, err := os.Stat(logPath); err != nil {
		return fmt.Errorf("--log: %w", err)
	} else if st.IsDir() {
		return fmt.Errorf("--log %s is a folder, want the train.jsonl file", logPath)
	}
	if !strings.EqualFold(filepath.Ext(out), ".png") {
		return fmt.Errorf("--out %s: want a .png file", out)
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("--out %s is a folder", out)
	}
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("--out: folder %s: %w", dir, err)
	} else if !st.IsDir() {
		return fmt.Errorf("--out: %s is not a folder", dir)
	}
	return nil
}
