package trainlog

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// testStep returns a step whose fields all differ and depend on n.
func testStep(n int) Step {
	f := float64(n)
	return Step{Kind: kindStep, Step: n, Epoch: f / 8, Loss: 3 / f, LR: 1e-4 * f, GradNorm: 0.5 + f,
		Tokens: 100 * n, TokensPerS: 1000.25 * f, StepMS: 12.5 * f, PrunedShare: 1 / (1 + f),
		MeanWeight: 1 + 0.01*f, ElapsedS: 0.1 * f}
}

func testEval(step, epoch int) Eval {
	return Eval{Kind: kindEval, Step: step, Epoch: epoch, Split: "test", Users: 20,
		Metrics: map[string]float64{"ndcg@10": 0.01 * float64(epoch), "hr@1": 0.125}, ElapsedS: float64(step)}
}

// writeLog writes the records with a fresh Writer and returns the file's bytes.
func writeLog(t *testing.T, path string, recs []any) []byte {
	t.Helper()
	w, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		switch r := r.(type) {
		case Step:
			err = w.WriteStep(r)
		case Eval:
			err = w.WriteEval(r)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sameFloat treats NaN as equal to NaN.
func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func sameStep(a, b Step) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() == reflect.Float64 {
			if !sameFloat(fa.Float(), fb.Float()) {
				return false
			}
		} else if fa.Interface() != fb.Interface() {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	diverged := testStep(3)
	diverged.Loss, diverged.GradNorm, diverged.MeanWeight = math.NaN(), math.Inf(1), math.Inf(-1)
	readDiverged := diverged
	readDiverged.GradNorm, readDiverged.MeanWeight = math.NaN(), math.NaN() // null reads back as NaN
	upper := testEval(2, 1)
	upper.Metrics = map[string]float64{"NDCG@10": 0.5, "HR@1": 0.25}
	upperRead := upper
	upperRead.Metrics = map[string]float64{"ndcg@10": 0.5, "hr@1": 0.25}
	for _, tc := range []struct {
		name      string
		write     []any
		wantSteps []Step
		wantEvals []Eval
	}{
		{"steps", []any{testStep(1), testStep(2)}, []Step{testStep(1), testStep(2)}, nil},
		{"steps and evals", []any{testStep(1), testStep(2), testEval(2, 1), testStep(3), testEval(3, 2)},
			[]Step{testStep(1), testStep(2), testStep(3)}, []Eval{testEval(2, 1), testEval(3, 2)}},
		{"non-finite values", []any{testStep(1), diverged}, []Step{testStep(1), readDiverged}, nil},
		{"kind filled in", []any{Step{Step: 5, Loss: 1}}, []Step{{Kind: kindStep, Step: 5, Loss: 1}}, nil},
		{"metric keys lower-cased", []any{testStep(2), upper}, []Step{testStep(2)}, []Eval{upperRead}},
	} {
		path := filepath.Join(t.TempDir(), "train.jsonl")
		writeLog(t, path, tc.write)
		steps, evals, err := Read(path)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(steps) != len(tc.wantSteps) {
			t.Fatalf("%s: %d steps, want %d", tc.name, len(steps), len(tc.wantSteps))
		}
		for i := range steps {
			if !sameStep(steps[i], tc.wantSteps[i]) {
				t.Errorf("%s: step %d\n got %+v\nwant %+v", tc.name, i, steps[i], tc.wantSteps[i])
			}
		}
		if !reflect.DeepEqual(evals, tc.wantEvals) {
			t.Errorf("%s: evals\n got %+v\nwant %+v", tc.name, evals, tc.wantEvals)
		}
	}
}

func TestNonFiniteIsNull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train.jsonl")
	s := testStep(1)
	s.Loss = math.NaN()
	data := writeLog(t, path, []any{s})
	if !bytes.Contains(data, []byte(`"loss":null`)) || !bytes.HasPrefix(data, []byte(`{"kind":"step","step":1,`)) {
		t.Errorf("line %s", data)
	}
}

// lines splits data after each '\n'.
func lines(data []byte) [][]byte { return bytes.SplitAfter(data, []byte{'\n'}) }

func TestOpenResume(t *testing.T) {
	// Steps 1..6 with evaluations after steps 2 and 4.
	recs := []any{testStep(1), testStep(2), testEval(2, 1), testStep(3), testStep(4), testEval(4, 2), testStep(5), testStep(6)}
	for _, tc := range []struct {
		name        string
		tail        string // appended to the log as written: a torn line
		keep        int
		keptLines   int // the file must be the first keptLines lines of the original, byte for byte
		lastStep    int
		addsNewline bool // the unterminated last line is complete and kept
	}{
		{"keep everything", "", 6, 8, 6, false},
		{"keep beyond the end", "", 100, 8, 6, false},
		{"drop after step 4", "", 4, 6, 4, false},
		{"evaluation at the kept step stays", "", 2, 3, 2, false},
		{"fresh run empties", "", 0, 0, 0, false},
		{"torn line dropped", `{"kind":"step","step":7,"epo`, 6, 8, 6, false},
		{"torn line and later steps dropped", `{"kind":"st`, 3, 4, 3, false},
		{"unterminated complete line kept", `{"kind":"step","step":7,"loss":1}`, 7, 8, 7, true},
	} {
		path := filepath.Join(t.TempDir(), "train.jsonl")
		orig := writeLog(t, path, recs)
		if err := os.WriteFile(path, append(orig, tc.tail...), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil { // a rewrite must keep the mode
			t.Fatal(err)
		}
		w, err := Open(path, tc.keep)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if w.LastStep() != tc.lastStep {
			t.Errorf("%s: LastStep %d, want %d", tc.name, w.LastStep(), tc.lastStep)
		}
		next := testStep(tc.lastStep + 1)
		if err := w.WriteStep(next); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		w.Close()
		want := bytes.Join(lines(orig)[:tc.keptLines], nil)
		if tc.addsNewline {
			want = append(want, tc.tail+"\n"...)
		}
		nextLine, _ := next.MarshalJSON()
		want = append(want, append(nextLine, '\n')...)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: file\n%s\nwant\n%s", tc.name, got, want)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode after rewrite %v %v, want 0640", tc.name, st.Mode(), err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("%s: %d files in the folder, want only the log", tc.name, len(entries))
		}
	}
}

func TestOpenCreatesAndRefusesBadLog(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(filepath.Join(dir, "new.jsonl"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.jsonl")); err != nil {
		t.Errorf("Open did not create the log: %v", err)
	}
	bad := []byte("{\"kind\":\"step\",\"step\":1}\nnot json\n{\"kind\":\"step\",\"step\":2}\n")
	path := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, 1)
	if err == nil || !strings.Contains(err.Error(), path+":2: not a JSON record") {
		t.Errorf("Open of a malformed log: error %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
		t.Errorf("Open changed a malformed log:\n%s", got)
	}
	if _, err := Open(filepath.Join(dir, "x.jsonl"), -1); err == nil {
		t.Error("negative keep-through step: no error")
	}
}

func TestWriterRejects(t *testing.T) {
	nanMetric := testEval(2, 1)
	nanMetric.Metrics = map[string]float64{"ndcg@10": math.NaN()}
	twice := testEval(2, 1)
	twice.Metrics = map[string]float64{"ndcg@10": 0.1, "NDCG@10": 0.2}
	for _, tc := range []struct {
		name string
		rec  any
		want string
	}{
		{"repeated step", testStep(2), "step 2 written after step 2"},
		{"step going back", testStep(1), "step 1 written after step 2"},
		{"step 0 on a fresh log", testStep(0), "step 0 written after step 2"},
		{"evaluation going back", testEval(1, 1), "evaluation at step 1 written after step 2"},
		{"non-finite metric", nanMetric, "metric ndcg@10 = NaN"},
		{"metric twice", twice, `metric "ndcg@10" given twice`},
	} {
		w, err := Open(filepath.Join(t.TempDir(), "train.jsonl"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteStep(testStep(1)); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteStep(testStep(2)); err != nil {
			t.Fatal(err)
		}
		switch r := tc.rec.(type) {
		case Step:
			err = w.WriteStep(r)
		case Eval:
			err = w.WriteEval(r)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		w.Close()
		if err := w.WriteStep(testStep(3)); err == nil || !strings.Contains(err.Error(), "after Close") {
			t.Errorf("%s: write after Close: %v", tc.name, err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	good := `{"kind":"step","step":1,"loss":2}` + "\n"
	for _, tc := range []struct {
		name, content, want string // want "" means no error
	}{
		{"torn final line skipped", good + `{"kind":"step","st`, ""},
		{"only a torn line", `{"ki`, ""},
		{"empty file", "", ""},
		{"malformed middle line", good + "{\"kind\":\"step\",\n" + good, ":2: not a JSON record"},
		{"unknown kind", good + good + `{"kind":"epoch","step":3}` + "\n", `:3: unknown record kind "epoch"`},
		{"unknown kind unterminated", good + `{"kind":"epoch","step":3}`, `:2: unknown record kind "epoch"`},
		{"no kind", `{"step":1}` + "\n", `:1: no "kind"`},
		{"no step", good + `{"kind":"eval","epoch":1}` + "\n", `:2: eval record without "step"`},
		{"empty line", good + "\n" + good, ":2: empty line"},
		{"wrong type", `{"kind":"step","step":1,"loss":"high"}` + "\n", ":1: step record: json: cannot unmarshal string"},
		{"trailing garbage", good + `{"kind":"step","step":2} x` + "\n", ":2: not a JSON record"},
	} {
		path := filepath.Join(t.TempDir(), "train.jsonl")
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		steps, _, err := Read(path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && len(steps) != strings.Count(tc.content, good):
			t.Errorf("%s: %d steps, want %d", tc.name, len(steps), strings.Count(tc.content, good))
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), path+tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, path+tc.want)
		}
	}
	if _, _, err := Read(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}

// TestOpenCreatesWithMode0644: a new log is created 0644 whatever the process umask (results
// are shared with a team); a log that exists keeps its mode (TestOpenResume).
func TestOpenCreatesWithMode0644(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "train.jsonl")
	w, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteStep(testStep(1)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("new log: mode %v (%v), want 0644", st.Mode(), err)
	}
}

// TestRunRecords: run records round-trip through ReadRuns, are kept by a resume at or after
// their step, are dropped by a fresh run (keep 0), and may not go back before a written step.
func TestRunRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train.jsonl")
	first := Run{Step: 0, Split: "train_10.csv", Rows: 10, DroppedIDs: 3}
	w, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, write := range []func() error{
		func() error { return w.WriteRun(first) },
		func() error { return w.WriteStep(testStep(1)) },
		func() error { return w.WriteStep(testStep(2)) },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteRun(Run{Step: 1}); err == nil {
		t.Errorf("a run record at step 1 after step 2 was accepted")
	}
	w.Close()
	w, err = Open(path, 2) // resumed after step 2: its own run record follows the kept ones
	if err != nil {
		t.Fatal(err)
	}
	resumed := Run{Step: 2, Split: "train_10.csv", Rows: 10, DroppedIDs: 3, Settings: map[string]string{"loss": "bear", "seed": "42"}}
	if err := w.WriteRun(resumed); err != nil {
		t.Fatal(err)
	}
	// a run record of a log written before settings, with flags: read as settings
	old := Run{Step: 2, Split: "train_10.csv", Rows: 10, DroppedIDs: 3,
		Flags: map[string]string{"--norm-group": "16", "--model (content sha256)": "config.json=a;model.safetensors=b"}}
	if err := w.WriteRun(old); err != nil {
		t.Fatal(err)
	}
	old.Flags, old.Settings = nil, map[string]string{"norm_group": "16", "model_sha256": "config.json=a;model.safetensors=b"}
	w.Close()
	runs, err := ReadRuns(path)
	first.Kind, resumed.Kind, old.Kind = kindRun, kindRun, kindRun
	if err != nil || !reflect.DeepEqual(runs, []Run{first, resumed, old}) {
		t.Errorf("ReadRuns: %+v (%v), want %+v, %+v and %+v", runs, err, first, resumed, old)
	}
	if steps, _, err := Read(path); err != nil || len(steps) != 2 {
		t.Errorf("Read: %d steps (%v), want 2", len(steps), err)
	}
	w, err = Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if data, err := os.ReadFile(path); err != nil || len(data) != 0 {
		t.Errorf("a fresh run kept %q (%v), want an empty log", data, err)
	}
}
