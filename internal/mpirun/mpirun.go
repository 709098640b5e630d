package mpirun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childVar names the child function a rank runs.
const childVar = "BEAR_MPIRUN_CHILD"

// Transports of Run: Open MPI's default choice (shared memory between the processes of one
// machine) and TCP alone, as between machines.
const (
	Default = ""
	TCP     = "tcp"
)

// Dispatch runs the child function named by the parent Run, if any, and exits with its status
// (1 if it returns an error, which it prints). A TestMain calls it before m.Run.
func Dispatch(children map[string]func() error) {
	name := os.Getenv(childVar)
	if name == "" {
		return
	}
	f, ok := children[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "mpirun: no child function %q\n", name)
		os.Exit(2)
	}
	if err := f(); err != nil {
		fmt.Fprintf(os.Stderr, "rank %s: %v\n", os.Getenv("OMPI_COMM_WORLD_RANK"), err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Result is a finished mpirun.
type Result struct {
	Output   string // stdout and stderr of mpirun and every rank
	Err      error  // mpirun's exit status (nil: every rank exited 0)
	TimedOut bool
	Elapsed  time.Duration
}

// Options of Run beyond the rank count.
type Options struct {
	Transport string
	Env       []string      // extra NAME=VALUE for every rank
	Timeout   time.Duration // default 5 minutes
	// Start, when set, is called with the running mpirun command (to signal or kill ranks).
	Start func(cmd *exec.Cmd)
}

// command returns the mpirun command line that runs the test binary's child function `child`
// on np ranks (--oversubscribe: more ranks than cores; root allowed, as in CI containers).
func command(ctx context.Context, np int, child string, o Options) *exec.Cmd {
	args := []string{"--oversubscribe", "--allow-run-as-root", "-np", strconv.Itoa(np)}
	if o.Transport == TCP {
		args = append(args, "--mca", "btl", "tcp,self")
	}
	// -x NAME exports the variable from mpirun's environment (values may hold any character).
	args = append(args, "-x", childVar)
	for _, kv := range o.Env {
		name, _, _ := strings.Cut(kv, "=")
		args = append(args, "-x", name)
	}
	args = append(args, os.Args[0], "-test.run", "^$")
	cmd := exec.CommandContext(ctx, "mpirun", args...)
	cmd.Env = append(os.Environ(), childVar+"="+child)
	cmd.Env = append(cmd.Env, o.Env...)
	return cmd
}

// Run runs child on np ranks and returns mpirun's outcome; it fails the test at once if
// mpirun is not installed (the Makefile installs Open MPI before these tests).
func Run(t testing.TB, np int, child string, o Options) Result {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Fatalf("mpirun not found (make test installs Debian's openmpi-bin): %v", err)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	cmd := command(ctx, np, child, o)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Start()
	if err == nil {
		if o.Start != nil {
			o.Start(cmd)
		}
		err = cmd.Wait()
	}
	return Result{Output: out.String(), Err: err, TimedOut: errors.Is(ctx.Err(), context.DeadlineExceeded), Elapsed: time.Since(t0)}
}

// MustRun is Run that fails the test unless every rank succeeded.
func MustRun(t testing.TB, np int, child string, o Options) string {
	t.Helper()
	r := Run(t, np, child, o)
	if r.Err != nil || r.TimedOut {
		t.Fatalf("mpirun -np %d %s (transport %q): %v (timed out: %v)\n%s", np, child, o.Transport, r.Err, r.TimedOut, r.Output)
	}
	return r.Output
}
