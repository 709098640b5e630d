package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bearrec/bear/runtime/evaluate/results"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func newClock() *fakeClock               { return &fakeClock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

// TestTrainBarFrames: after every update, the frame left on the terminal shows one step's count
// and that step's loss (the bar used to show step N's count beside step N+1's loss).
func TestTrainBarFrames(t *testing.T) {
	var buf bytes.Buffer
	clock := newClock()
	update, finish := trainProgress(&buf, true, clock.now)
	for step := 1; step <= 5; step++ {
		clock.add(time.Second)
		update(step, 5, float64(step), 100)
		out := buf.String()
		frame := out[strings.LastIndex(out, "\r")+1:]
		if !strings.Contains(frame, fmt.Sprintf("%d/5", step)) || !strings.Contains(frame, fmt.Sprintf("loss %d.0000", step)) {
			t.Fatalf("after step %d the frame is %q", step, frame)
		}
	}
	finish()
}

// TestProgressLines: without a terminal, progress is plain lines: the first update, then at
// most one a minute, and the last; no carriage returns.
func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	clock := newClock()
	update, finish := trainProgress(&buf, false, clock.now)
	for step := 1; step <= 10; step++ {
		update(step, 10, 2.5, 300)
		clock.add(20 * time.Second)
	}
	finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// updates 20 s apart: lines at steps 1, 4 (a minute later), 7, and the last
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "bear train: step 1/10 (10%), loss 2.5000, 300 tokens/s, 0s elapsed, ? left") ||
		!strings.HasPrefix(lines[1], "bear train: step 4/10 (40%), loss 2.5000, 300 tokens/s, 1m0s elapsed, 2m0s left") ||
		!strings.HasPrefix(lines[3], "bear train: step 10/10 (100%)") || strings.Contains(buf.String(), "\r") {
		t.Fatalf("lines:\n%s", buf.String())
	}
	buf.Reset()
	clock = newClock()
	users, end := evalProgress(&buf, false, "eval", clock.now)
	for done := 4; done <= 20; done += 4 { // 4 users resumed from a journal
		users(done, 20)
		clock.add(40 * time.Second)
	}
	end()
	out := buf.String()
	if !strings.HasPrefix(out, "bear: eval (4 resumed): 4/20 users (20%), ? users/s") || !strings.Contains(out, "20/20 users (100%)") || strings.Contains(out, "\r") {
		t.Fatalf("evaluation lines:\n%s", out)
	}
}

// captureOutput runs f with os.Stdout and os.Stderr sent to files and returns what each got.
func captureOutput(t *testing.T, f func()) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	out, _ := os.Create(dir + "/out")
	errf, _ := os.Create(dir + "/err")
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
	f()
	out.Close()
	errf.Close()
	o, _ := os.ReadFile(dir + "/out")
	e, _ := os.ReadFile(dir + "/err")
	return string(o), string(e)
}

// TestHelpAndVersion: asking for help is not an error (exit 0), `bear help CMD` prints the
// command's own flags, and --version names bear's commit and ONNX Runtime's version.
func TestHelpAndVersion(t *testing.T) {
	for _, c := range []struct {
		args       []string
		code       int
		wantStderr string
		wantStdout string
	}{
		{[]string{"-h"}, 0, "usage: bear COMMAND", ""},
		{[]string{"--help"}, 0, "usage: bear COMMAND", ""},
		{[]string{"help"}, 0, "usage: bear COMMAND", ""},
		{[]string{"help", "train"}, 0, "usage: bear train --model DIR", ""},
		{[]string{"train", "-h"}, 0, "-lora-targets", ""},
		{[]string{"help", "nope"}, 2, `unknown command "nope"`, ""},
		{[]string{}, 2, "usage: bear COMMAND", ""},
		{[]string{"--version"}, 0, "", "ONNX Runtime 1.30.0"},
		{[]string{"version"}, 0, "", "bear "},
	} {
		var code int
		stdout, stderr := captureOutput(t, func() { code = runMain(c.args, os.Stderr) })
		if code != c.code || !strings.Contains(stderr, c.wantStderr) || !strings.Contains(stdout, c.wantStdout) {
			t.Errorf("bear %q: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, stdout, stderr)
		}
	}
}

// TestResumedEvaluationSummary: an evaluation whose users all came from the journal says so
// instead of a rate of 0 users/s.
func TestResumedEvaluationSummary(t *testing.T) {
	var buf bytes.Buffer
	m := resumedMetrics(0)
	printMetrics(&buf, m, "out")
	if !strings.Contains(buf.String(), "all from the journal") || strings.Contains(buf.String(), "users/s") {
		t.Errorf("all users resumed:\n%s", buf.String())
	}
	buf.Reset()
	printMetrics(&buf, resumedMetrics(3), "out")
	if !strings.Contains(buf.String(), "users 5 (shard 0/1, 2 of them from the journal)") {
		t.Errorf("3 of 5 users decoded:\n%s", buf.String())
	}
}

func resumedMetrics(decoded int) *results.Metrics {
	m := &results.Metrics{ItemMatch: map[string]float64{"NDCG@10": 0.5}, OfficialMatch: map[string]float64{"NDCG@10": 0.5}, Users: 5}
	m.Config.Shard = "0/1"
	m.Timing.Users, m.Timing.WallS, m.Timing.UsersPerS = decoded, 1, float64(decoded)
	return m
}
