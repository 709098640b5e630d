package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// childEnv makes the test binary a training process (see TestMain): its value is the JSON of
// the child's Options.
const childEnv = "BEAR_TRAIN_TEST_CHILD"

func runChild() int {
	var o Options
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// As `bear train` does: SIGINT cancels the run, which saves a checkpoint and stops.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKillAndResume: a run killed with SIGKILL mid-epoch and resumed from its last checkpoint
// ends with the same adapter, bit for bit, as the uninterrupted run, and with the same loss
// curve; so does a second uninterrupted run (same seed and threads: ONNX Runtime on the CPU
// with one thread is deterministic here, which the equality shows).
func TestKillAndResume(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	root := t.TempDir()
	ref := smallRun(model, tok, filepath.Join(root, "ref"), lossgrad.BEAR)
	if _, err := Run(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	again := smallRun(model, tok, filepath.Join(root, "again"), lossgrad.BEAR)
	if _, err := Run(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	sameRunOutputs(t, ref.Out, again.Out)

	killed := smallRun(model, tok, filepath.Join(root, "killed"), lossgrad.BEAR)
	killAfterSteps(t, killed, 5) // mid-epoch 1 of 2; the last checkpoint is at step 4
	steps, _, err := trainlog.Read(filepath.Join(killed.Out, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(steps); n < 5 || n >= 12 {
		t.Fatalf("the killed run logged %d steps, want it stopped mid-run", n)
	}
	killed.Resume = killed.Out
	if _, err := Run(context.Background(), killed); err != nil {
		t.Fatal(err)
	}
	sameRunOutputs(t, ref.Out, killed.Out)

	// Ctrl-C: the step in progress finishes, a checkpoint of it is saved, the run resumes.
	stopped := smallRun(model, tok, filepath.Join(root, "stopped"), lossgrad.BEAR)
	stderr := signalAfterSteps(t, stopped, 3, os.Interrupt)
	if !strings.Contains(stderr, "interrupted at step") || !strings.Contains(stderr, "train.Options.Resume") {
		t.Errorf("interrupted run's message: %s", stderr)
	}
	logged, _, _ := trainlog.Read(filepath.Join(stopped.Out, LogFile))
	if saved := checkpointStep(t, stopped.Out); saved != len(logged) {
		t.Errorf("checkpoint at step %d, the log has %d steps", saved, len(logged))
	}
	stopped.Resume = stopped.Out
	if _, err := Run(context.Background(), stopped); err != nil {
		t.Fatal(err)
	}
	sameRunOutputs(t, ref.Out, stopped.Out)
}

// checkpointStep reads the step of a run folder's checkpoint.
func checkpointStep(t *testing.T, dir string) int {
	t.Helper()
	_, meta, err := hf.ReadSafetensorsHeader(filepath.Join(dir, checkpointFile))
	if err != nil {
		t.Fatal(err)
	}
	var st state
	if err := json.Unmarshal([]byte(meta["bear_train_state"]), &st); err != nil {
		t.Fatal(err)
	}
	return st.Step
}

// killAfterSteps starts o in a child process and SIGKILLs it once its log holds n steps.
func killAfterSteps(t *testing.T, o Options, n int) {
	t.Helper()
	signalAfterSteps(t, o, n, os.Kill)
}

// signalAfterSteps starts o in a child process, sends it sig once its log holds n steps, and
// returns its standard error once it has ended with a failure.
func signalAfterSteps(t *testing.T, o Options, n int, sig os.Signal) string {
	t.Helper()
	cmd, stderr := startChild(t, o, n)
	cmd.Process.Signal(sig)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child ended with %v before it was signalled: %s", err, stderr.String())
	}
	return stderr.String()
}

// sameRunOutputs compares two runs' final and per-epoch adapters bit for bit and their logged
// losses exactly.
func sameRunOutputs(t *testing.T, a, b string) {
	t.Helper()
	for _, dir := range []string{finalDir, "epoch-1", "epoch-2"} {
		for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
			x, err1 := os.ReadFile(filepath.Join(a, dir, f))
			y, err2 := os.ReadFile(filepath.Join(b, dir, f))
			if err1 != nil || err2 != nil {
				t.Fatalf("%s/%s: %v %v", dir, f, err1, err2)
			}
			if !bytes.Equal(x, y) {
				t.Errorf("%s/%s differs between %s and %s", dir, f, a, b)
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
	if len(sa) != len(sb) {
		t.Fatalf("%d logged steps against %d", len(sa), len(sb))
	}
	var diffs []string
	for i := range sa {
		if sa[i].Loss != sb[i].Loss || sa[i].GradNorm != sb[i].GradNorm || sa[i].LR != sb[i].LR {
			diffs = append(diffs, fmt.Sprintf("step %d: loss %v/%v grad norm %v/%v", sa[i].Step, sa[i].Loss, sb[i].Loss, sa[i].GradNorm, sb[i].GradNorm))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("loss curves differ:\n%s", strings.Join(diffs, "\n"))
	}
}
