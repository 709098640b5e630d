//go:build mpi

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/mpirun"
)

// argsEnv carries the bear command line (JSON) of the ranks of the MPI tests.
const argsEnv = "BEAR_TEST_ARGS"

// TestMain lets the test binary be `bear` for mpirun: a rank runs runMain on $BEAR_TEST_ARGS.
func TestMain(m *testing.M) {
	runAsBear()
	mpirun.Dispatch(map[string]func() error{"bear": func() error {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv(argsEnv)), &args); err != nil {
			return err
		}
		if code := runMain(args, os.Stderr); code != 0 {
			return fmt.Errorf("bear exited with %d", code)
		}
		return nil
	}})
	os.Exit(m.Run())
}

// runBear runs `bear ARGS` on np ranks and returns mpirun's outcome.
func runBear(t *testing.T, np int, args ...string) mpirun.Result {
	t.Helper()
	js, _ := json.Marshal(args)
	return mpirun.Run(t, np, "bear", mpirun.Options{Env: []string{argsEnv + "=" + string(js)}})
}

// TestMPIBenchTrain: `bear bench train` under mpirun -np 2 prints one JSON line (rank 0's) with
// the ranks, the time spent in the all-reduce per step and its share.
func TestMPIBenchTrain(t *testing.T) {
	f := newTrainFixture(t)
	r := runBear(t, 2, append([]string{"bench", "train"}, append(benchTrainArgs(f), "--loss", "bear", "--steps", "2")...)...)
	if r.Err != nil {
		t.Fatalf("%v\n%s", r.Err, r.Output)
	}
	var lines []string
	for _, l := range strings.Split(r.Output, "\n") {
		if strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d JSON lines, want rank 0's only:\n%s", len(lines), r.Output)
	}
	var got struct {
		Ranks      int     `json:"ranks"`
		CommMS     float64 `json:"comm_ms"`
		CommShare  float64 `json:"comm_share"`
		StepMS     float64 `json:"step_ms"`
		GradientMB float64 `json:"gradient_mb"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Ranks != 2 || !(got.CommMS > 0) || !(got.CommShare > 0 && got.CommShare < 1) || !(got.CommMS < got.StepMS) || !(got.GradientMB > 0) {
		t.Errorf("bench under 2 ranks: %s", lines[0])
	}
	t.Log(lines[0])
}

// TestMPITrainCommand: `bear train` on 2 ranks speaks once (rank 0), and a failure on one rank
// (rank 0 alone reads --resume, here a folder without a checkpoint) ends the whole job with the
// reason instead of leaving rank 1 waiting; so do too many ranks for the norm groups.
func TestMPITrainCommand(t *testing.T) {
	f := newTrainFixture(t)
	out := filepath.Join(f.dir, "run")
	args := append(benchTrainArgs(f), "--loss", "msl", "--epochs", "1", "--no-progress", "--out", out)
	r := runBear(t, 2, append([]string{"train"}, args...)...)
	if r.Err != nil {
		t.Fatalf("%v\n%s", r.Err, r.Output)
	}
	if strings.Count(r.Output, "trained ") != 1 || strings.Count(r.Output, "data-parallel over 2 processes") != 1 {
		t.Errorf("want one summary and one data-parallel note, from rank 0:\n%s", r.Output)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "adapter_model.safetensors")); err != nil {
		t.Error(err)
	}

	empty := filepath.Join(f.dir, "empty")
	os.MkdirAll(empty, 0o755)
	r = runBear(t, 2, append([]string{"train"}, append(args[:len(args)-2], "--out", empty, "--resume", empty)...)...)
	if r.Err == nil || r.TimedOut || !strings.Contains(r.Output, "rank 0 of 2: --resume") || !strings.Contains(r.Output, "ending every rank") {
		t.Errorf("a failing rank 0: %v (timed out %v)\n%s", r.Err, r.TimedOut, r.Output)
	}

	r = runBear(t, 3, append([]string{"train"}, append(args[:len(args)-2], "--out", filepath.Join(f.dir, "three"))...)...)
	if r.Err == nil || r.TimedOut || !strings.Contains(r.Output, "3 processes but --batch 4 / --norm-group 2 = 2 norm groups") {
		t.Errorf("3 ranks for 2 norm groups: %v (timed out %v)\n%s", r.Err, r.TimedOut, r.Output)
	}
}
