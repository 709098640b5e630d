package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/testdeps"
)

// asBearEnv makes the test binary run `bear ARGS` (its own arguments) instead of the tests: the
// tests that signal a running command start it so.
const asBearEnv = "BEAR_TEST_AS_BEAR"

// runAsBear runs the test binary as bear when asBearEnv asks for it; TestMain calls it first.
func runAsBear() {
	if os.Getenv(asBearEnv) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stderr))
	}
}

// signalBear starts `bear args...` (the test binary run as bear), sends it sig once the journal
// at journal holds users users, and returns how the process ended, its standard error and the
// time it took to end after the signal.
func signalBear(t *testing.T, args []string, journal string, users int, sig os.Signal) (string, time.Duration, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asBearEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && journalUsers(journal) < users; {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(sig)
	t0 := time.Now()
	err := cmd.Wait()
	return stderr.String(), time.Since(t0), err
}

// journalUsers counts the records of a journal (0 when there is none yet).
func journalUsers(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return max(n-1, 0) // the configuration line
}

// TestEvalInterruptedBySignal: SIGINT and SIGTERM stop a running `bear eval` within a batch,
// with exit status 1 and a message saying where the finished users are and how to continue;
// the same command then resumes from the journal and finishes.
func TestEvalInterruptedBySignal(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	model := writeTinyModel(t, filepath.Join(dir, "tiny"))
	data := filepath.Join("..", "..", "testdata", "office")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		out := filepath.Join(dir, sig.String())
		args := []string{"eval", "--model", model, "--tokenizer", tok, "--data", data, "--cache-dir", filepath.Join(dir, "cache"),
			"--limit", "16", "--batch", "4", "--out", out, "--no-progress"}
		journal := filepath.Join(out, "journal.jsonl")
		stderr, took, err := signalBear(t, args, journal, 4, sig)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, "interrupted: the finished batches are in "+journal) {
			t.Fatalf("%v: exit %v\n%s", sig, err, stderr)
		}
		done := journalUsers(journal)
		t.Logf("%v: stopped %v after the signal with %d of 16 users in the journal", sig, took.Round(time.Millisecond), done)
		if done < 4 || done == 16 {
			t.Errorf("%v: %d users in the journal, want the batches finished before the signal", sig, done)
		}
		var so, se bytes.Buffer
		if err := evalMain(args[1:], &so, &se); err != nil || !strings.Contains(se.String(), "users already evaluated") || !strings.Contains(so.String(), "users 16") {
			t.Errorf("%v: rerun: %v\n%s\n%s", sig, err, so.String(), se.String())
		}
	}
}

// TestTrainInterruptedDuringEvaluation: SIGTERM during the evaluation after an epoch stops the
// run at once (not after the evaluation), and the resumed run finishes that evaluation from its
// journal before anything else.
func TestTrainInterruptedDuringEvaluation(t *testing.T) {
	f := newTrainFixture(t)
	out := filepath.Join(f.dir, "run")
	args := []string{"train", "--tokenizer", f.tok, "--cache-dir", filepath.Join(f.dir, "cache"), "--no-progress", "--threads", "1",
		"--batch", "8", "--norm-group", "4", "--micro-batch", "4", "--lora-r", "4", "--dataset", "Office",
		"--model", f.model, "--data", f.data, "--loss", "msl", "--out", out, "--epochs", "1", "--eval-users", "16"}
	journal := filepath.Join(out, "eval-epoch-1", "journal.jsonl")
	stderr, took, err := signalBear(t, args, journal, 8, syscall.SIGTERM)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(stderr, "during the evaluation of epoch 1") {
		t.Fatalf("exit %v\n%s", err, stderr)
	}
	done := journalUsers(journal)
	t.Logf("stopped %v after SIGTERM with %d of 16 users evaluated", took.Round(time.Millisecond), done)
	if done == 16 {
		t.Errorf("the evaluation ran to its end after SIGTERM")
	}
	var so, se bytes.Buffer
	err = trainMain(append(args[1:], "--resume", out), &so, &se)
	if err != nil || !strings.Contains(se.String(), "the evaluation of epoch 1 was interrupted: running it first") ||
		!strings.Contains(se.String(), "users already evaluated") || !strings.Contains(se.String(), "epoch 1: NDCG@10") {
		t.Errorf("resume: %v\n%s", err, se.String())
	}
}
