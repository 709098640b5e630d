package train

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"github.com/bearrec/bear/tokenize"
)

func TestHoldOut(t *testing.T) {
	rows := func(ts ...int64) []tokenize.Row {
		var rs []tokenize.Row
		for i, x := range ts {
			rs = append(rs, tokenize.Row{UserID: i, Timestamp: x})
		}
		return rs
	}
	users := func(rs []tokenize.Row) []int {
		var ids []int
		for _, r := range rs {
			ids = append(ids, r.UserID)
		}
		return ids
	}
	cases := []struct {
		name         string
		ts           []int64
		n            int
		train, valid []int
	}{
		{"latest two", []int64{5, 1, 9, 3, 7}, 2, []int{0, 1, 3}, []int{2, 4}},
		{"ties go to the later rows", []int64{4, 4, 4, 1}, 2, []int{0, 3}, []int{1, 2}},
		{"one", []int64{2, 3, 1}, 1, []int{0, 2}, []int{1}},
	}
	for _, c := range cases {
		train, valid, err := holdOut(rows(c.ts...), c.n, "split.csv")
		if err != nil || !slices.Equal(users(train), c.train) || !slices.Equal(users(valid), c.valid) {
			t.Errorf("%s: train %v valid %v (%v), want %v and %v", c.name, users(train), users(valid), err, c.train, c.valid)
		}
	}
	if _, _, err := holdOut(rows(1, 2), 2, "split.csv"); err == nil || !strings.Contains(err.Error(), "nothing left to train on") {
		t.Errorf("holding out every row: %v", err)
	}
	if _, _, err := holdOut(rows(0, 0, 0), 1, "split.csv"); err == nil || !strings.Contains(err.Error(), "no timestamp column") {
		t.Errorf("a split without timestamps: %v", err)
	}
}

func TestBestAndStale(t *testing.T) {
	ev := func(epoch int, split string, ndcg float64) trainlog.Eval {
		return trainlog.Eval{Epoch: epoch, Split: split, Metrics: map[string]float64{"ndcg@10": ndcg}}
	}
	evals := []trainlog.Eval{ev(1, "valid", 0.1), ev(1, "test", 0.9), ev(2, "valid", 0.3), ev(3, "valid", 0.3), ev(4, "valid", 0.2), ev(4, "test", 1)}
	b := best(evals)
	if b == nil || b.Epoch != 2 {
		t.Fatalf("best %+v, want epoch 2 (the test split never selects; a tie keeps the earlier epoch)", b)
	}
	if n := stale(evals, b, 4); n != 2 {
		t.Errorf("stale after epoch 4: %d, want 2", n)
	}
	if n := stale(evals, b, 3); n != 1 {
		t.Errorf("stale after epoch 3: %d, want 1", n)
	}
	if best([]trainlog.Eval{ev(1, "test", 1)}) != nil {
		t.Error("a test evaluation selected a model")
	}
}

// validRun is smallRun on 24 training rows (3 steps an epoch) for three epochs, holding out the
// latest 8 rows of the split for validation.
func validRun(t *testing.T, out string) Options {
	o := smallRun(tinyModel(t), tokenizer(t), out, lossgrad.BEAR)
	o.Samples, o.Epochs, o.Valid, o.CheckpointEvery = 24, 3, 8, 0
	return o
}

// TestValidation: the held-out rows are the latest of the split and are evaluated after every
// epoch; best/ holds the model of the epoch the selection rule picks from the logged metrics;
// the TensorBoard file holds every logged value; early stopping ends the run where the log says
// it should, and a resume of the stopped run has nothing to do.
func TestValidation(t *testing.T) {
	root := t.TempDir()
	o := validRun(t, filepath.Join(root, "full"))
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkHeldOut(t, filepath.Join(o.Out, validFile), 8)
	evals := validEvals(t, o.Out)
	if len(evals) != 3 {
		t.Fatalf("%d validation records, want one per epoch", len(evals))
	}
	want := expectedBest(evals)
	if sum.Best == nil || sum.Best.Epoch != want {
		t.Fatalf("summary's best %+v, want epoch %d", sum.Best, want)
	}
	checkBest(t, o.Out, want)
	checkTensorBoard(t, o.Out)

	early := o
	early.Out, early.EarlyStop = filepath.Join(root, "early"), 1
	sum, err = Run(context.Background(), early)
	if err != nil {
		t.Fatal(err)
	}
	stop := expectedStop(evals, 1, 3)
	if got := len(validEvals(t, early.Out)); got != stop || sum.Steps != 3*stop || (stop < 3) != (sum.StoppedEarly != "") {
		t.Fatalf("early stopping: %d validations, %d steps, %q; want it stopped after epoch %d", got, sum.Steps, sum.StoppedEarly, stop)
	}
	sameFile(t, filepath.Join(early.Out, finalDir, "adapter_model.safetensors"), filepath.Join(early.Out, "epoch-"+strconv.Itoa(stop), "adapter_model.safetensors"))
	checkBest(t, early.Out, expectedBest(validEvals(t, early.Out)))
	if stop < 3 {
		early.Resume = early.Out
		sum, err = Run(context.Background(), early)
		if err != nil || sum.FirstStep != 0 || sum.StoppedEarly == "" {
			t.Errorf("resuming the stopped run: %+v, %v; want nothing to do", sum, err)
		}
	}
}

// TestValidationResumedAfterKill: a run killed mid-epoch after a validation, whose best/ was
// then lost (a kill between the evaluation's record and best/'s copy), resumes to the same
// validations, the same best/ and a TensorBoard file without repeated steps.
func TestValidationResumedAfterKill(t *testing.T) {
	root := t.TempDir()
	ref := validRun(t, filepath.Join(root, "ref"))
	if _, err := Run(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	o := validRun(t, filepath.Join(root, "killed"))
	o.CheckpointEvery = 1
	killAfterSteps(t, o, 5) // in epoch 2, after epoch 1's validation
	if n := len(validEvals(t, o.Out)); n != 1 {
		t.Fatalf("the killed run logged %d validations, want epoch 1's", n)
	}
	if err := os.RemoveAll(filepath.Join(o.Out, BestDir)); err != nil {
		t.Fatal(err)
	}
	o.Resume = o.Out
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	a, b := validEvals(t, ref.Out), validEvals(t, o.Out)
	for i := range a {
		if i >= len(b) || a[i].Epoch != b[i].Epoch || !equalMetrics(a[i].Metrics, b[i].Metrics) {
			t.Fatalf("validations differ: %+v against %+v", a, b)
		}
	}
	checkBest(t, o.Out, expectedBest(a))
	sameFile(t, filepath.Join(ref.Out, BestDir, "adapter_model.safetensors"), filepath.Join(o.Out, BestDir, "adapter_model.safetensors"))
	checkTensorBoard(t, o.Out)
}

func equalMetrics(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkHeldOut compares the run's valid.csv with the n latest rows of the committed split,
// found here with encoding/csv (ties of timestamps: the later rows of the file).
func checkHeldOut(t *testing.T, path string, n int) {
	t.Helper()
	read := func(p string) [][]string {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return recs[1:]
	}
	all := read(filepath.Join(officeData, "train_10000.csv"))
	idx := make([]int, len(all))
	for i := range idx {
		idx[i] = i
	}
	ts := func(i int) int64 { v, _ := strconv.ParseInt(all[i][2], 10, 64); return v }
	sort.SliceStable(idx, func(a, b int) bool { return ts(idx[a]) < ts(idx[b]) })
	latest := idx[len(idx)-n:]
	sort.Ints(latest)
	got := read(path)
	if len(got) != n {
		t.Fatalf("%s holds %d rows, want %d", path, len(got), n)
	}
	for k, i := range latest {
		if got[k][0] != all[i][0] || got[k][2] != all[i][2] {
			t.Errorf("held-out row %d: user %s at %s, want row %d of the split: user %s at %s", k, got[k][0], got[k][2], i+2, all[i][0], all[i][2])
		}
	}
}

func validEvals(t *testing.T, dir string) []trainlog.Eval {
	t.Helper()
	_, evals, err := trainlog.Read(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(evals, func(e trainlog.Eval) bool { return e.Split != "valid" })
}

// expectedBest applies the selection rule to the logged validations: the highest NDCG@10, the
// earliest epoch among equals.
func expectedBest(evals []trainlog.Eval) int {
	bestEpoch, bestValue := 0, math.Inf(-1)
	for _, e := range evals {
		if v := e.Metrics["ndcg@10"]; v > bestValue {
			bestEpoch, bestValue = e.Epoch, v
		}
	}
	return bestEpoch
}

// expectedStop is the epoch after which early stopping with patience p ends a run of the given
// epochs whose validations are evals.
func expectedStop(evals []trainlog.Eval, p, epochs int) int {
	bestValue, since := math.Inf(-1), 0
	for _, e := range evals {
		if v := e.Metrics["ndcg@10"]; v > bestValue {
			bestValue, since = v, 0
		} else if since++; since >= p {
			return e.Epoch
		}
	}
	return epochs
}

// checkBest: best/ holds the adapter of epoch `epoch` and says so.
func checkBest(t *testing.T, out string, epoch int) {
	t.Helper()
	sel, err := trainlog.ReadSelection(filepath.Join(out, BestDir))
	if err != nil || sel.Epoch != epoch || sel.Metric != "ndcg@10" || sel.Rows != 8 {
		t.Fatalf("best/'s selection %+v (%v), want epoch %d on 8 rows", sel, err, epoch)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		sameFile(t, filepath.Join(out, BestDir, f), filepath.Join(out, "epoch-"+strconv.Itoa(epoch), f))
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%v, %v)", a, b, err1, err2)
	}
}

// checkTensorBoard reads the run's event file with the independent reader (Python, Debian's
// python3-protobuf and python3-crc32c) and compares every scalar with train.jsonl's value
// rounded to float32, as the file stores it; a step appears once.
func checkTensorBoard(t *testing.T, out string) {
	t.Helper()
	steps, evals, err := trainlog.Read(filepath.Join(out, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{} // "step/tag" -> value
	for _, s := range steps {
		for tag, v := range map[string]float64{"train/loss": s.Loss, "train/lr": s.LR, "train/grad_norm": s.GradNorm,
			"train/tokens_per_s": s.TokensPerS, "train/pruned_share": s.PrunedShare, "train/mean_weight": s.MeanWeight, "train/epoch": s.Epoch} {
			want[strconv.Itoa(s.Step)+" "+tag] = v
		}
	}
	for _, e := range evals {
		for k, v := range e.Metrics {
			want[strconv.Itoa(e.Step)+" "+e.Split+"/"+k] = v
		}
	}
	got := map[string]float64{}
	for _, ev := range readEventsPython(t, filepath.Join(out, TensorBoardFile)) {
		for _, v := range ev.Values {
			key := strconv.FormatInt(ev.Step, 10) + " " + v.Tag
			if _, dup := got[key]; dup {
				t.Errorf("%s: step %d has %s twice", TensorBoardFile, ev.Step, v.Tag)
			}
			u, err := strconv.ParseUint(v.Bits, 16, 64)
			if err != nil {
				t.Fatalf("bits %q: %v", v.Bits, err)
			}
			got[key] = math.Float64frombits(u)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s holds %d scalars, train.jsonl %d", TensorBoardFile, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Float64bits(g) != math.Float64bits(float64(float32(v))) {
			t.Errorf("%s: %s = %v (present %v), train.jsonl has %v", TensorBoardFile, k, g, ok, v)
		}
	}
}

// pyEvent is an event as runtime/train/tfevents/testdata/read_events.py prints it.
type pyEvent struct {
	Step   int64 `json:"step"`
	Values []struct {
		Tag  string `json:"tag"`
		Bits string `json:"bits"` // the value's float64 bits, in hexadecimal
	} `json:"values"`
}

func readEventsPython(t *testing.T, path string) []pyEvent {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", filepath.Join("tfevents", "testdata", "read_events.py"), path)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("read_events.py (make deps-tfevents installs what it needs): %v\n%s", err, stderr)
	}
	var evs []pyEvent
	if err := json.Unmarshal(out, &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}
