package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// TestModelUsed: the report says which model each run's evaluation used and why: best/ as
// validation chose it, final/ when validation chose another epoch, and it refuses a best/
// without its selection record or an evaluation of a folder that has changed since.
func TestModelUsed(t *testing.T) {
	root := t.TempDir()
	f := standardSet(root)[0]
	writeFakeRun(t, f)
	w, err := trainlog.Open(filepath.Join(f.dir, logFile), 0) // a new log: three epochs of one step
	if err != nil {
		t.Fatal(err)
	}
	w.WriteRun(trainlog.Run{Split: "data/Office/train_10000.csv", Rows: 100, Flags: baseFlags(f.loss, f.seed, f.dir)})
	for e, v := range []float64{0.1, 0.25, 0.2} {
		w.WriteStep(trainlog.Step{Step: e + 1, Epoch: float64(e + 1), Loss: 1, LR: 1e-3, TokensPerS: 100, ElapsedS: float64(e)})
		w.WriteEval(trainlog.Eval{Step: e + 1, Epoch: e + 1, Split: "valid", Users: 40, Metrics: map[string]float64{"ndcg@10": v}})
	}
	w.WriteEval(trainlog.Eval{Step: 3, Epoch: 3, Split: "test", Users: 40, Metrics: map[string]float64{"ndcg@10": 0.9}})
	w.Close()
	best := filepath.Join(f.dir, bestDir)
	writeAdapterFiles(t, best, "epoch 2")
	sel, _ := json.Marshal(trainlog.Selection{Epoch: 2, Step: 2, Metric: "ndcg@10", Value: 0.25, Rows: 40})
	os.WriteFile(filepath.Join(best, trainlog.SelectionFile), sel, 0o644)
	writeAdapterFiles(t, filepath.Join(f.dir, finalDir), "epoch 3")

	evaluate := func(folder string, edit func(m *results.Metrics)) (*Run, error) {
		m := testMetrics(f)
		m.Config.Adapter = filepath.Join(f.dir, folder)
		m.Config.AdapterSHA256, _ = peft.ContentSHA256(m.Config.Adapter)
		if edit != nil {
			edit(m)
		}
		writeMetricsFile(t, filepath.Join(f.dir, DefaultEvalSubdir), m)
		return readRun(f.dir, "")
	}
	r, err := evaluate(bestDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "best/ = epoch 2 of 3: the highest validation NDCG@10 (0.2500 on 40 held-out rows)"; r.ModelUsed != want {
		t.Errorf("best/: %q, %v; want %q", r.ModelUsed, err, want)
	}
	r, err = evaluate(finalDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.ModelUsed, "final/ = step 3") || !strings.Contains(r.ModelUsed, "validation chose epoch 2") {
		t.Errorf("final/: %q, %v", r.ModelUsed, err)
	}
	_, err = evaluate(bestDir, func(m *results.Metrics) { m.Config.AdapterSHA256 = "0123" })
	if err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Errorf("an evaluation of an older best/: %v", err)
	}
	os.Remove(filepath.Join(best, trainlog.SelectionFile))
	_, err = evaluate(bestDir, nil)
	if err == nil || !strings.Contains(err.Error(), trainlog.SelectionFile) {
		t.Errorf("a best/ without its selection: %v", err)
	}
}

func writeAdapterFiles(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(content+" "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
