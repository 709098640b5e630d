package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// writeReportRun writes a finished synthetic run folder as bear train and bear eval leave it:
// train.jsonl (a run record with its flags, three steps), final/, and eval/metrics.json with
// the given NDCG@10 and HR@10 and beams.
func writeReportRun(t *testing.T, dir, loss string, seed int, ndcg10, hr10 float64, beams int) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "final"), 0o755)
	w, err := trainlog.Open(filepath.Join(dir, "train.jsonl"), 0)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{"--loss": loss, "--seed": fmt.Sprint(seed), "--lr": "0.001", "--model": "models/small", "--out": dir}
	if err := w.WriteRun(trainlog.Run{Rows: 10, Flags: flags}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := w.WriteStep(trainlog.Step{Step: i, Epoch: float64(i) / 3, Loss: 1 / float64(i), TokensPerS: 100, ElapsedS: float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	lp := 1.0
	m := results.Metrics{
		ItemMatch: map[string]float64{"NDCG@1": ndcg10, "NDCG@5": ndcg10, "NDCG@10": ndcg10, "HR@1": hr10, "HR@5": hr10, "HR@10": hr10},
		Primary:   "item_match", Users: 20,
		Pruning: &results.PruningSummary{Users: 20, InExact: 10, Pruned: seed},
		Config: results.Config{Dataset: "Office", SplitFile: "test_5000.csv", SplitSHA256: "aa", Limit: 20, SelectedUsers: 20,
			ShardCount: 1, Beams: beams, Return: beams, Constrain: "before", LengthPenalty: 1, MaxNewTokens: 128, Pruning: true,
			ExactLengthPenalty: &lp, Model: "models/small", Adapter: filepath.Join(dir, "final"), Data: "data/Office"},
	}
	data, _ := json.Marshal(m)
	os.MkdirAll(filepath.Join(dir, "eval"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "eval", "metrics.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReportCommand: three MSL and three BEAR seeds give the known table cells (NDCG@10 0.1,
// 0.2, 0.3: 0.2000 ± 4.302653 * 0.1 / sqrt(3) = 0.2484) and the paired differences; the plots
// are written; a second run needs --force and writes the same report.md.
func TestReportCommand(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for seed := 1; seed <= 3; seed++ {
		msl, bear := filepath.Join(root, fmt.Sprintf("msl-%d", seed)), filepath.Join(root, fmt.Sprintf("bear-%d", seed))
		writeReportRun(t, msl, "msl", seed, 0.1*float64(seed), 0.2, 10)
		writeReportRun(t, bear, "bear", seed, 0.1*float64(seed)+0.05, 0.2+0.01*float64(seed), 10)
		dirs = append(dirs, msl, bear)
	}
	out := filepath.Join(root, "report")
	var stderr bytes.Buffer
	// Flags after the folders, as in the usage line.
	if code := runMain(append(append([]string{"report"}, dirs...), "--out", out), &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| msl | 3 | 0.2000 ± 0.2484 | 0.2000 ± 0.2484 | 0.2000 ± 0.2484 | 0.2000 ± 0.0000 |",
		"| bear | 3 | 0.2500 ± 0.2484 |",
		"| bear | 1, 2, 3 | +0.0500 ± 0.0000 | +0.0200 ± 0.0248 | +0.0000 ± 0.0000 |", // HR@10 differences 0.01, 0.02, 0.03
		"## Paired comparison with msl",
		"bear train --loss msl --lr 0.001 --model models/small --out " + filepath.Join(root, "msl-1") + " --seed 1",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	for _, png := range []string{"ndcg10.png", "curves.png"} {
		if st, err := os.Stat(filepath.Join(out, png)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", png, err)
		}
	}
	stderr.Reset()
	if code := runMain(append([]string{"report", "--out", out}, dirs...), &stderr); code != 1 || !strings.Contains(stderr.String(), "--force") {
		t.Errorf("a second report into the same folder without --force: exit %d, %s", code, stderr.String())
	}
	if code := runMain(append([]string{"report", "--out", out, "--force"}, dirs...), &stderr); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr.String())
	}
	if again, _ := os.ReadFile(filepath.Join(out, "report.md")); !bytes.Equal(again, md) {
		t.Errorf("the rerun wrote a different report.md")
	}

	// --notes: the file's Markdown under the header, the rest of the report unchanged.
	notes := filepath.Join(root, "notes.md")
	if err := os.WriteFile(notes, []byte("## About these runs\n\nA *hand-written* note.\n\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := runMain(append([]string{"report", "--out", out, "--force", "--notes", notes}, dirs...), &stderr); code != 0 {
		t.Fatalf("--notes: exit %d: %s", code, stderr.String())
	}
	withNotes, _ := os.ReadFile(filepath.Join(out, "report.md"))
	head, rest, ok := bytes.Cut(md, []byte("## Ranking metrics"))
	if !ok || !bytes.Equal(withNotes, slices.Concat(head, []byte("## About these runs\n\nA *hand-written* note.\n\n## Ranking metrics"), rest)) {
		t.Errorf("--notes: report.md is not the report with the note under its header:\n%s", withNotes)
	}
}

// TestReportCommandErrors: refused inputs and flags exit 1 with the reason, and leave no --out.
func TestReportCommandErrors(t *testing.T) {
	root := t.TempDir()
	a, b, c := filepath.Join(root, "msl-1"), filepath.Join(root, "bear-1"), filepath.Join(root, "bear-2")
	writeReportRun(t, a, "msl", 1, 0.1, 0.2, 10)
	writeReportRun(t, b, "bear", 1, 0.1, 0.2, 10)
	writeReportRun(t, c, "bear", 2, 0.1, 0.2, 5)
	out := filepath.Join(root, "out")
	empty, binary := filepath.Join(root, "empty.md"), filepath.Join(root, "binary.md")
	if err := os.WriteFile(empty, []byte(" \n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binary, []byte{0xff, 0xfe, 0, 1}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no folders", []string{"--out", out}, 1, "give the run folders"},
		{"no --out", []string{a, b}, 1, "--out is required"},
		{"different beams", []string{a, b, c, "--out", out}, 1, "beams 5"},
		{"out inside a run", []string{a, b, "--out", filepath.Join(a, "report")}, 1, "lies inside the input"},
		{"eval subdir outside", []string{a, b, "--out", out, "--eval-subdir", "../x"}, 1, "--eval-subdir"},
		{"missing evaluation", []string{a, b, "--out", out, "--eval-subdir", "other"}, 1, filepath.Join(a, "other", "metrics.json") + ": missing"},
		{"baseline absent", []string{a, b, "--out", out, "--baseline", "lml"}, 1, "--baseline lml: no such loss"},
		{"unknown flag", []string{a, "--bogus"}, 1, "flag provided but not defined"},
		{"notes missing", []string{a, b, "--out", out, "--notes", filepath.Join(root, "none.md")}, 1, "--notes: open " + filepath.Join(root, "none.md")},
		{"notes empty", []string{a, b, "--out", out, "--notes", empty}, 1, "--notes " + empty + ": the file is empty"},
		{"notes binary", []string{a, b, "--out", out, "--notes", binary}, 1, "not UTF-8 text"},
	} {
		var stderr bytes.Buffer
		if code := runMain(append([]string{"report"}, tc.args...), &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, %q; want %d and %q", tc.name, code, stderr.String(), tc.code, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused report left %s: %v", out, err)
	}
}
