//go:build mpi

package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/mpirun"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/runtime/train/comm"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// pidDirEnv names a folder where each rank of mpiTrain writes rank-R.pid (for the kill test).
const pidDirEnv = "BEAR_TRAIN_TEST_PIDS"

func init() { mpiChildren = map[string]func() error{"train": mpiTrain, "checksum": mpiChecksum} }

// mpiTrain is one rank of a data-parallel run of the Options in $BEAR_TRAIN_TEST_CHILD, as
// `bear train` runs it under mpirun: SIGINT or SIGTERM stop every rank at the same step, any
// other error aborts the job.
func mpiTrain() error {
	var o Options
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &o); err != nil {
		return err
	}
	c, err := comm.Init()
	if err != nil {
		return err
	}
	o.Comm = c
	if dir := os.Getenv(pidDirEnv); dir != "" {
		name := filepath.Join(dir, fmt.Sprintf("rank-%d.pid", c.Rank()))
		if err := os.WriteFile(name, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = Run(ctx, o)
	if err != nil && !errors.Is(err, ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", c.Rank(), err)
		c.Abort(1)
	}
	if ferr := c.Finalize(); err == nil {
		err = ferr
	}
	return err
}

// parallelRun is smallRun with 4 norm groups of 4 per step (micro-batches of 2), so that each of
// 2 ranks computes 2 groups of 2 micro-batches: 48 rows, 3 steps per epoch, 2 epochs.
func parallelRun(model, tok, out string, kind lossgrad.Kind) Options {
	o := smallRun(model, tok, out, kind)
	o.Batch.Batch = 16
	return o
}

// runRanks trains o on np ranks under mpirun and fails the test unless every rank succeeded.
func runRanks(t *testing.T, np int, o Options, transport string) {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	mpirun.MustRun(t, np, "train", mpirun.Options{Transport: transport, Env: []string{childEnv + "=" + string(js)}})
}

// TestDataParallelMatchesOneProcess: 2 ranks, each with half of every step's norm groups, end
// with the adapters (every epoch's and the final) and the loss curve of one process with the
// whole batch, within 1e-6 relative (the gradient sums run in another order), for MSL and
// BEAR, over shared memory and over TCP alone; with 3 ranks (uneven shares: 2, 1, 1 groups)
// too. LoRA dropout is on, so the dropout masks must follow the micro-batches to their ranks.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	root := t.TempDir()
	for _, kind := range []lossgrad.Kind{lossgrad.MSL, lossgrad.BEAR} {
		one := parallelRun(model, tok, filepath.Join(root, kind.String()+"-one"), kind)
		if _, err := Run(context.Background(), one); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			np        int
			transport string
		}{{2, mpirun.Default}, {2, mpirun.TCP}, {3, mpirun.Default}} {
			name := fmt.Sprintf("%s-np%d-%s", kind, c.np, c.transport)
			t.Run(name, func(t *testing.T) {
				par := parallelRun(model, tok, filepath.Join(root, name), kind)
				runRanks(t, c.np, par, c.transport)
				worst := closeRuns(t, one.Out, par.Out, 1e-6)
				t.Logf("largest relative difference from one process: %.3g", worst)
			})
		}
	}
}

// TestDataParallelEarlyStop: with a validation set and early stopping, 2 ranks stop after the
// same epoch as one process (rank 0 decides; the other follows it, or the job would hang), and
// keep the same best epoch.
func TestDataParallelEarlyStop(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	root := t.TempDir()
	opts := func(out string) Options {
		o := parallelRun(model, tok, filepath.Join(root, out), lossgrad.BEAR)
		o.Epochs, o.Valid, o.EarlyStop = 3, 8, 1
		return o
	}
	one := opts("one")
	sum, err := Run(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	par := opts("two")
	runRanks(t, 2, par, mpirun.Default)
	steps, _, err := trainlog.Read(filepath.Join(par.Out, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != sum.Steps {
		t.Errorf("2 ranks ran %d steps, one process %d (stopped early: %q)", len(steps), sum.Steps, sum.StoppedEarly)
	}
	a, err1 := trainlog.ReadSelection(filepath.Join(one.Out, BestDir))
	b, err2 := trainlog.ReadSelection(filepath.Join(par.Out, BestDir))
	if err1 != nil || err2 != nil || a.Epoch != b.Epoch {
		t.Errorf("best epoch: one process %+v (%v), 2 ranks %+v (%v)", a, err1, b, err2)
	}
}

// closeRuns compares two runs' adapters tensor by tensor (relative L2 difference) and their
// logged losses and gradient norms (relative), fails beyond tol, and returns the largest
// difference seen.
func closeRuns(t *testing.T, a, b string, tol float64) float64 {
	t.Helper()
	worst := 0.0
	for _, dir := range []string{"epoch-1", "epoch-2", finalDir} {
		x, y := readAdapter(t, filepath.Join(a, dir)), readAdapter(t, filepath.Join(b, dir))
		if len(x) != len(y) || len(x) == 0 {
			t.Fatalf("%s: %d tensors against %d", dir, len(x), len(y))
		}
		for name, xv := range x {
			d := relDiff(xv, y[name])
			worst = math.Max(worst, d)
			if !(d <= tol) {
				t.Errorf("%s: %s differs by %.3g relative", dir, name, d)
			}
		}
	}
	sa, _, err := trainlog.Read(filepath.Join(a, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	sb, _, err := trainlog.Read(filepath.Join(b, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) != len(sb) || len(sa) == 0 {
		t.Fatalf("%d logged steps against %d", len(sa), len(sb))
	}
	for i := range sa {
		for _, v := range [][2]float64{{sa[i].Loss, sb[i].Loss}, {sa[i].GradNorm, sb[i].GradNorm}, {sa[i].PrunedShare, sb[i].PrunedShare}} {
			d := math.Abs(v[0]-v[1]) / math.Max(math.Abs(v[0]), 1e-30)
			worst = math.Max(worst, d)
			if !(d <= tol) {
				t.Errorf("step %d: logged %v against %v", sa[i].Step, v[0], v[1])
			}
		}
	}
	return worst
}

// TestDataParallelKillAndResume: SIGKILL to rank 1 mid-run ends the whole job (mpirun reports
// the rank and the signal) instead of leaving rank 0 blocked in the all-reduce; resuming from
// the last checkpoint with the same 2 ranks ends with the adapters and loss curve of an
// uninterrupted 2-rank run, bit for bit.
func TestDataParallelKillAndResume(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	root := t.TempDir()
	ref := smallRun(model, tok, filepath.Join(root, "ref"), lossgrad.BEAR) // 2 groups per step: one per rank, 12 steps
	runRanks(t, 2, ref, mpirun.Default)

	killed := smallRun(model, tok, filepath.Join(root, "killed"), lossgrad.BEAR)
	js, err := json.Marshal(killed)
	if err != nil {
		t.Fatal(err)
	}
	pids := t.TempDir()
	var killedAt time.Time
	done := make(chan error, 1)
	r := mpirun.Run(t, 2, "train", mpirun.Options{Env: []string{childEnv + "=" + string(js), pidDirEnv + "=" + pids}, Timeout: 3 * time.Minute,
		Start: func(*exec.Cmd) {
			go func() {
				err := waitForSteps(filepath.Join(killed.Out, LogFile), 5, 2*time.Minute)
				if err == nil {
					var pid int
					if pid, err = readPID(filepath.Join(pids, "rank-1.pid")); err == nil {
						killedAt = time.Now()
						err = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				done <- err
			}()
		}})
	if err := <-done; err != nil { // sent at the kill, before mpirun could end
		t.Fatalf("killing rank 1: %v\n%s", err, r.Output)
	}
	after := time.Since(killedAt)
	t.Logf("mpirun ended %v after rank 1 was killed:\n%s", after.Round(time.Millisecond), r.Output)
	if r.Err == nil || r.TimedOut {
		t.Fatalf("mpirun ended with %v (timed out: %v) after a rank was killed", r.Err, r.TimedOut)
	}
	if after > time.Minute {
		t.Errorf("the job took %v to end after rank 1 was killed", after)
	}
	for _, want := range []string{"rank 1", "signal 9"} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("mpirun's message does not say %q", want)
		}
	}
	logged, _, _ := trainlog.Read(filepath.Join(killed.Out, LogFile))
	if n := len(logged); n < 5 || n >= 12 {
		t.Fatalf("the killed run logged %d steps, want it stopped mid-run", n)
	}
	killed.Resume = killed.Out
	runRanks(t, 2, killed, mpirun.Default)
	sameRunOutputs(t, ref.Out, killed.Out)
}

// waitForSteps waits until the train.jsonl at path holds n step records.
func waitForSteps(path string, n int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), `"kind":"step"`) >= n {
			return nil
		}
	}
	return fmt.Errorf("%s: fewer than %d steps after %v", path, n, limit)
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// TestDataParallelChecksum: the comparison behind the weight checksum before checkpoints and the
// identity check at start says "same" on every rank when every rank holds the same values, and
// "different" on every rank when one bit of one rank differs (rank 1, 2 or the last rank).
func TestDataParallelChecksum(t *testing.T) {
	for _, np := range []int{2, 3} {
		t.Run(fmt.Sprint(np), func(t *testing.T) {
			out := mpirun.MustRun(t, np, "checksum", mpirun.Options{})
			if n := strings.Count(out, "checksum ok"); n != np {
				t.Errorf("%d of %d ranks reported checksum ok:\n%s", n, np, out)
			}
		})
	}
}

// mpiChecksum is one rank of TestDataParallelChecksum.
func mpiChecksum() error {
	c, err := comm.Init()
	if err != nil {
		return err
	}
	defer c.Finalize()
	values := func(flip int) [32]byte {
		st := &stepper{params: []optim.Param{{Value: []float32{1, -2.5, 3e-8, float32(math.Pi)}}, {Value: []float32{0.25}}}}
		if flip == c.Rank() {
			st.params[0].Value[2] = math.Float32frombits(math.Float32bits(st.params[0].Value[2]) ^ 1)
		}
		return st.valuesDigest()
	}
	for _, tc := range []struct {
		flip int // the rank whose values differ in their last bit (-1: none)
		want bool
	}{{-1, true}, {1, false}, {c.Size() - 1, false}, {-1, true}} {
		same, err := sameOnAllRanks(c, values(tc.flip))
		if err != nil {
			return err
		}
		if same != tc.want {
			return fmt.Errorf("rank %d: rank %d's values flipped: same %v, want %v", c.Rank(), tc.flip, same, tc.want)
		}
	}
	id := map[string]string{"lr": "0.001", "seed": "1"}
	if c.Rank() == 0 {
		id["seed"] = "2"
	}
	if same, err := sameOnAllRanks(c, identityDigest(id)); err != nil || same {
		return fmt.Errorf("rank %d: identities differing in --seed: same %v, %v", c.Rank(), same, err)
	}
	fmt.Printf("rank %d: checksum ok\n", c.Rank())
	return nil
}
