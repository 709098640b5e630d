package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"github.com/bearrec/bear/tokenize"
)

// startChild starts o in a child process and returns once its log holds n steps, with the
// child's standard error; the test's cleanup kills it if it still runs.
func startChild(t *testing.T, o Options, n int) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(filepath.Join(o.Out, LogFile))
		if bytes.Count(data, []byte(`"kind":"step"`)) >= n { // the run record is not a step
			return cmd, &stderr
		}
	}
	t.Fatalf("the child logged fewer than %d steps in 2 minutes: %s", n, stderr.String())
	return nil, nil
}

// TestOutLockedByAnotherRun: while a run trains into a folder, a second run into it (new or
// resumed) is refused with the first one's pid and host, and nothing of the first run's is
// touched; once the first is killed, its lock is recognised as stale and the run resumes.
func TestOutLockedByAnotherRun(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	o := smallRun(model, tok, filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.Epochs = 50 // long enough to be running while the second starts
	child, _ := startChild(t, o, 2)
	before, _ := os.ReadFile(filepath.Join(o.Out, LogFile))

	for _, resume := range []string{"", o.Out} {
		second := o
		second.Resume = resume
		_, err := Run(context.Background(), second)
		var le *atomicfs.LockedError
		if !errors.As(err, &le) || le.Owner.PID != child.Process.Pid || !strings.Contains(err.Error(), "train.Options.Out") {
			t.Fatalf("second run (resume %q) while pid %d trains: %v", resume, child.Process.Pid, err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(o.Out, LogFile)); !bytes.HasPrefix(after, before) {
		t.Error("the refused runs changed the first run's log")
	}
	child.Process.Kill()
	child.Wait()

	resumed := o
	resumed.Resume = o.Out
	var logged []string
	resumed.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	stopped, stop := context.WithCancel(context.Background())
	stop() // take the folder, then stop before the first step
	if _, err := Run(stopped, resumed); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("resume after the first run was killed: %v", err)
	}
	stale := strconv.Itoa(child.Process.Pid)
	if !slices.ContainsFunc(logged, func(s string) bool { return strings.Contains(s, "no longer running") && strings.Contains(s, stale) }) {
		t.Errorf("no note of the stale lock of pid %s in %q", stale, logged)
	}
}

// TestOutMustNotBeAnInput: --out that is, lies inside or contains the model, the data or the
// tokenizer's folder is refused before anything is written, and the input is left unchanged.
func TestOutMustNotBeAnInput(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	listing := func(dir string) []string {
		var names []string
		filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error {
			names = append(names, p)
			return nil
		})
		return names
	}
	before := listing(model)
	for _, c := range []struct{ out, want string }{
		{model, "is the input"},
		{filepath.Join(model, "run"), "lies inside the input"},
		{filepath.Dir(model), "contains the input"},
		{filepath.Join(officeData, "run"), "lies inside the input"},
	} {
		o := smallRun(model, tok, c.out, lossgrad.MSL)
		o.Runtime.CacheDir = filepath.Join(t.TempDir(), "cache")
		_, err := Run(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "train.Options.Out") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--out %s: %v, want %q", c.out, err, c.want)
		}
	}
	if after := listing(model); !slices.Equal(before, after) {
		t.Errorf("the model folder changed: %v, was %v", after, before)
	}
	if _, err := os.Stat(filepath.Join(officeData, "run")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run created %s", filepath.Join(officeData, "run"))
	}
}

// TestResumeShowsTheDifference: resuming with another model of the same shape is refused with
// the two content hashes shown where they differ.
func TestResumeShowsTheDifference(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	other := filepath.Join(t.TempDir(), "other")
	p, _ := hf.LookupPreset("tiny")
	if err := hf.WriteRandom(other, p.Config, hf.InitOptions{Seed: 8}); err != nil {
		t.Fatal(err)
	}
	o := smallRun(model, tok, filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Model, o.Resume = other, o.Out
	_, err := Run(context.Background(), o)
	const name = "train.Options.Model (content sha256)"
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("resume with another model: %v", err)
	}
	// "... trained with NAME A, this run has NAME B: ..."
	msg := err.Error()
	a := strings.Fields(msg[strings.Index(msg, name)+len(name):])[0]
	b := strings.Fields(msg[strings.LastIndex(msg, name)+len(name):])[0]
	if a == b {
		t.Errorf("the message shows the same value for both models: %s", msg)
	}
}

func TestShowDifference(t *testing.T) {
	h1 := strings.Repeat("ab", 30) + "0123"
	h2 := strings.Repeat("ab", 30) + "0x23"
	for _, c := range []struct{ a, b, wantA, wantB string }{
		{"1e-4", "2e-4", "1e-4", "2e-4"},
		{"", "msl", "(none)", "msl"},
		{h1, h2, "…bababababababab0123", "…bababababababab0x23"}, // 16 bytes before the first difference
		{h1, "", "abababababababab…", "(none)"},
	} {
		a, b := showDifference(c.a, c.b)
		if a != c.wantA || b != c.wantB {
			t.Errorf("showDifference(%q, %q) = %q, %q; want %q, %q", c.a, c.b, a, b, c.wantA, c.wantB)
		}
	}
}

// TestEvaluationInterruptedAndResumed: an interrupt during the evaluation after an epoch stops
// it at once (the journal keeps the finished batch, no result is written), the run stops with
// ErrInterrupted naming the evaluation, and the resumed run finishes that evaluation first,
// from its journal, with the metrics of an uninterrupted run.
func TestEvaluationInterruptedAndResumed(t *testing.T) {
	model, tok := tinyModel(t), tokenizer(t)
	root := t.TempDir()
	ref := smallRun(model, tok, filepath.Join(root, "ref"), lossgrad.BEAR)
	ref.Epochs, ref.EvalUsers = 1, 10 // two batches of users: 8 and 2
	if _, err := Run(context.Background(), ref); err != nil {
		t.Fatal(err)
	}

	o := ref
	o.Out = filepath.Join(root, "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.EvalProgress = func(_ string, e, done, total int) {
		if done == 8 {
			cancel()
		}
	}
	_, err := Run(ctx, o)
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "evaluation of epoch 1") {
		t.Fatalf("interrupted during the evaluation: %v", err)
	}
	eval := filepath.Join(o.Out, "eval-epoch-1")
	if _, err := os.Stat(filepath.Join(eval, results.MetricsName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted evaluation wrote results (%v): it ran on after the interrupt", err)
	}
	if n := journalRecords(t, eval); n != 8 {
		t.Errorf("the journal holds %d users, want the first batch's 8", n)
	}
	if _, evals, _ := trainlog.Read(filepath.Join(o.Out, LogFile)); len(evals) != 0 {
		t.Errorf("the log holds %d evaluations", len(evals))
	}

	o.Resume, o.EvalProgress = o.Out, nil
	var logged []string
	o.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(logged, func(s string) bool { return strings.Contains(s, "8 of 10 users already evaluated") }) {
		t.Errorf("the resumed evaluation did not continue its journal: %q", logged)
	}
	sameEvaluations(t, ref.Out, o.Out)
}

// TestEvaluationRerunAfterKill: a run killed during the evaluation after an epoch leaves the
// epoch-end checkpoint and no evaluation record; the resumed run evaluates that epoch before it
// trains on. (The killed state is made by removing the finished evaluation's traces, which is
// what a kill at any moment of the evaluation leaves.)
func TestEvaluationRerunAfterKill(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "killed"), lossgrad.MSL)
	o.EvalUsers, o.MaxSteps = 4, 6 // one epoch of 48 rows in steps of 8, then its evaluation
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// What a kill during the evaluation leaves: no record, no results.
	logPath := filepath.Join(o.Out, LogFile)
	data, _ := os.ReadFile(logPath)
	var kept []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.Contains(line, `"kind":"eval"`) {
			kept = append(kept, line)
		}
	}
	os.WriteFile(logPath, []byte(strings.Join(kept, "")), 0o644)
	os.RemoveAll(filepath.Join(o.Out, "eval-epoch-1"))

	o.Resume = o.Out // no step left to run: the evaluation of epoch 1 must run all the same
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	_, evals, err := trainlog.Read(logPath)
	if err != nil || len(evals) != 1 || evals[0].Epoch != 1 {
		t.Fatalf("after the resume the log holds evaluations %+v (%v), want epoch 1's", evals, err)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "eval-epoch-1", results.MetricsName)); err != nil {
		t.Error(err)
	}
}

func journalRecords(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n")) - 1 // the configuration line
}

// sameEvaluations compares the evaluation records of two runs' logs.
func sameEvaluations(t *testing.T, a, b string) {
	t.Helper()
	_, ea, err := trainlog.Read(filepath.Join(a, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	_, eb, err := trainlog.Read(filepath.Join(b, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ea) != len(eb) || len(ea) == 0 {
		t.Fatalf("%d evaluations against %d", len(ea), len(eb))
	}
	for i := range ea {
		if ea[i].Epoch != eb[i].Epoch || ea[i].Users != eb[i].Users || fmt.Sprint(ea[i].Metrics) != fmt.Sprint(eb[i].Metrics) {
			t.Errorf("evaluation %d: %+v against %+v", i, ea[i], eb[i])
		}
	}
}

// TestCheckpointChecksums: one flipped bit in an AdamW moment of the checkpoint, which no shape
// or format check sees, stops the resume with the tensor named.
func TestCheckpointChecksums(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.Out, checkpointFile)
	ts, _, err := hf.ReadSafetensorsHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for n := range ts {
		if strings.HasPrefix(n, "exp_avg_sq/") {
			name = n
			break
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, ts[name].Offset+4)
	b[0] ^= 0x10
	f.WriteAt(b, ts[name].Offset+4)
	f.Close()
	o.Resume = o.Out
	_, err = Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), name) {
		t.Fatalf("resume from a damaged checkpoint: %v, want a checksum error naming %s", err, name)
	}
}

// TestTornLogLineRestored: an interruption that cuts the log line of the checkpoint's own step
// does not lose the record: the resumed run writes it again from the checkpoint's copy.
func TestTornLogLineRestored(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 4
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(o.Out, LogFile)
	want, _, err := trainlog.Read(logPath)
	if err != nil || len(want) != 4 {
		t.Fatalf("%d steps logged (%v)", len(want), err)
	}
	data, _ := os.ReadFile(logPath)
	last := bytes.LastIndex(data[:len(data)-1], []byte("\n")) + 1
	os.WriteFile(logPath, data[:last+(len(data)-last)/2], 0o644) // step 4's line cut in half
	o.Resume = o.Out
	var logged []string
	o.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got, _, err := trainlog.Read(logPath)
	if err != nil || len(got) != 4 || fmt.Sprint(got[3]) != fmt.Sprint(want[3]) {
		t.Fatalf("steps after the resume %+v (%v), want step 4 as it was: %+v", got, err, want[3])
	}
	if !slices.ContainsFunc(logged, func(s string) bool { return strings.Contains(s, "record of step 4") }) {
		t.Errorf("the restoration was not reported: %q", logged)
	}
}

// TestLeftoversRemoved: temporary files and folders of writes a kill interrupted (an adapter
// folder, a checkpoint) are removed when a run takes its folder again, and reported.
func TestLeftoversRemoved(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{".final.tmp-123", ".checkpoint.safetensors.tmp-77", ".epoch-1.old-5"}
	os.MkdirAll(filepath.Join(o.Out, leftovers[0], "x"), 0o755)
	os.WriteFile(filepath.Join(o.Out, leftovers[1]), make([]byte, 1<<16), 0o644)
	os.MkdirAll(filepath.Join(o.Out, leftovers[2]), 0o755)
	o.Resume = o.Out
	var logged []string
	o.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, l := range leftovers {
		if _, err := os.Stat(filepath.Join(o.Out, l)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", l, err)
		}
	}
	if !slices.ContainsFunc(logged, func(s string) bool { return strings.Contains(s, "removed 3 leftovers") }) {
		t.Errorf("the removal was not reported: %q", logged)
	}
}

// TestVocabularyChecked: a model whose vocabulary is smaller than the ids the tokenizer gives
// for the data is refused before anything is built or written, naming the tokenizer and the id.
func TestVocabularyChecked(t *testing.T) {
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	cfg.VocabSize = 1000
	model := filepath.Join(t.TempDir(), "small-vocab")
	if err := hf.WriteRandom(model, cfg, hf.InitOptions{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	tok := tokenizer(t)
	o := smallRun(model, tok, filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	_, err := Run(context.Background(), o)
	var ve *tokenize.VocabError
	if !errors.As(err, &ve) || ve.Vocab != 1000 || !strings.Contains(err.Error(), tok) {
		t.Fatalf("vocabulary of 1000 with the Llama-3 tokenizer: %v", err)
	}
	if _, err := os.Stat(o.Out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run created --out (%v)", err)
	}
}

// TestTrainingRecord: every saved model carries the loss it was trained with, for bear eval's
// choice of the constraint.
func TestTrainingRecord(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := evaluate.ReadTrainingRecord(filepath.Join(o.Out, finalDir))
	if err != nil || !ok || rec.Loss != "msl" {
		t.Fatalf("training record %+v (%v, %v), want loss msl", rec, ok, err)
	}
}

// TestDuplicateTargetsRefused: a LoRA target given twice is refused (it was written twice into
// adapter_config.json).
func TestDuplicateTargetsRefused(t *testing.T) {
	o := smallRun("m", "t", "o", lossgrad.MSL)
	o.LoRA.Targets = []string{"v_proj", "q_proj", "v_proj"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "v_proj is listed twice") {
		t.Fatalf("duplicate targets: %v", err)
	}
}

// TestResumeFromOlderCheckpoint: a checkpoint written before settings had stable names (its
// identity keyed by flags, the model identified by the hashes of its files) resumes.
func TestResumeFromOlderCheckpoint(t *testing.T) {
	o := smallRun(tinyModel(t), tokenizer(t), filepath.Join(t.TempDir(), "run"), lossgrad.MSL)
	o.MaxSteps = 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.Out, checkpointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var hdr map[string]any
	if err := json.Unmarshal(data[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	meta := hdr["__metadata__"].(map[string]any)
	var st state
	if err := json.Unmarshal([]byte(meta["bear_train_state"].(string)), &st); err != nil {
		t.Fatal(err)
	}
	legacy, err := legacyModelHash(o.Model)
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]string{}
	for k, v := range st.Identity {
		switch k {
		case "model_sha256":
			old["--model (content sha256)"] = legacy
		case "split_sha256":
			old["--data split (sha256)"] = v
		case "tokenizer_sha256":
			old["--tokenizer (sha256)"] = v
		default:
			old["--"+strings.ReplaceAll(k, "_", "-")] = v
		}
	}
	st.Identity = old
	js, _ := json.Marshal(st)
	meta["bear_train_state"] = string(js)
	h, _ := json.Marshal(hdr)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	if err := os.WriteFile(path, append(append(out, h...), data[8+n:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Resume, o.MaxSteps = o.Out, 2
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("resume from a checkpoint keyed by flags: %v", err)
	}
}
