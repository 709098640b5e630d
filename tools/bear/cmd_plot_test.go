package main

import (
	"bytes"
	"errors"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/runtime/train/trainlog"
)

// writeTrainLog writes a small log through trainlog's Writer: steps 1..n, one evaluation at the end.
func writeTrainLog(t *testing.T, path string, n int) {
	t.Helper()
	w, err := trainlog.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= n; i++ {
		s := trainlog.Step{Step: i, Epoch: float64(i) / float64(n), Loss: 3 - float64(i)/float64(n), PrunedShare: 0.5 - 0.2*float64(i)/float64(n)}
		if err := w.WriteStep(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteEval(trainlog.Eval{Step: n, Epoch: 1, Split: "test", Users: 10, Metrics: map[string]float64{"ndcg@10": 0.1}}); err != nil {
		t.Fatal(err)
	}
}

func TestPlotCommand(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "train.jsonl")
	writeTrainLog(t, logPath, 30)
	out := filepath.Join(dir, "train.png")
	var stderr bytes.Buffer
	if err := plotMain([]string{"--log", logPath, "--out", out, "--title", "office"}, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := "wrote " + out + " (30 steps, 1 evaluations)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("message %q, want %q", stderr.String(), want)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != trainlog.PlotWidth || cfg.Height != 3*trainlog.PanelHeight {
		t.Errorf("image %dx%d, want %dx%d (three panels)", cfg.Width, cfg.Height, trainlog.PlotWidth, 3*trainlog.PanelHeight)
	}
}

func TestPlotCommandErrors(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "train.jsonl")
	writeTrainLog(t, logPath, 5)
	empty := filepath.Join(dir, "empty.jsonl")
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{\"kind\":\"step\",\"step\":1}\n{oops\n{\"kind\":\"step\",\"step\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "out.png")
	pngDir := filepath.Join(dir, "folder.png")
	if err := os.Mkdir(pngDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no log", []string{"--out", png}, "--log is required"},
		{"no out", []string{"--log", logPath}, "--out is required"},
		{"extra argument", []string{"--log", logPath, "--out", png, "more"}, `unexpected arguments ["more"]`},
		{"unknown flag", []string{"--log", logPath, "--out", png, "--width", "3"}, "flag provided but not defined: -width"},
		{"missing log", []string{"--log", filepath.Join(dir, "none.jsonl"), "--out", png}, "--log: stat " + filepath.Join(dir, "none.jsonl") + ": no such file"},
		{"log is a folder", []string{"--log", dir, "--out", png}, "is a folder, want the train.jsonl file"},
		{"out not png", []string{"--log", logPath, "--out", filepath.Join(dir, "out.jpg")}, "out.jpg: want a .png file"},
		{"out folder missing", []string{"--log", logPath, "--out", filepath.Join(dir, "no", "out.png")}, "--out: folder " + filepath.Join(dir, "no") + ": stat"},
		{"out folder is a file", []string{"--log", logPath, "--out", filepath.Join(notDir, "out.png")}, "is not a folder"},
		{"out is a folder", []string{"--log", logPath, "--out", pngDir}, "--out " + pngDir + " is a folder"},
		{"empty log", []string{"--log", empty, "--out", png}, empty + ": empty log"},
		{"malformed log", []string{"--log", bad, "--out", png}, bad + ":2: not a JSON record"},
	} {
		var stderr bytes.Buffer
		err := plotMain(tc.args, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: help instead of an error", tc.name)
		}
	}
	if _, err := os.Stat(png); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote %s (%v)", png, err)
	}
}
