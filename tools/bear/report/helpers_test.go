package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// fakeRun describes a synthetic run folder: its flags, its step log and its evaluation.
type fakeRun struct {
	dir        string
	loss, seed string
	extra      map[string]string // flags besides the defaults below
	ndcg10     float64           // NDCG@10; the other metrics are derived from it
	hr10       float64
	pruned     int // incorrectly pruned targets among inExact
	inExact    int
	tokensPerS []float64 // one step per value
	elapsed    []float64 // elapsed_s of each step (default: 10 s per step)
	edit       func(m *results.Metrics)
}

// testUsers is the number of users of every synthetic evaluation.
const testUsers = 50

// baseFlags are the flags every synthetic run records (as runtime/train's runFlags does).
func baseFlags(loss, seed, out string) map[string]string {
	return map[string]string{
		"--loss": loss, "--seed": seed, "--tau": "1", "--xi": "1", "--lambda": "1", "--k": "10", "--lr": "0.001",
		"--batch": "16", "--epochs": "1", "--max-steps": "0", "--model": "models/small", "--data": "data/Office",
		"--out": out, "--threads": "1", "--model (content sha256)": "config.json=abc;model.safetensors=def",
		"--lora-targets": "q_proj,v_proj", "--eval-users": "0",
	}
}

// testMetrics is a metrics.json with known values on the shared evaluation configuration.
func testMetrics(f fakeRun) *results.Metrics {
	lp := 1.0
	m := &results.Metrics{
		ItemMatch: map[string]float64{"NDCG@1": f.ndcg10 / 4, "NDCG@5": f.ndcg10 / 2, "NDCG@10": f.ndcg10,
			"HR@1": f.hr10 / 4, "HR@5": f.hr10 / 2, "HR@10": f.hr10},
		OfficialMatch: map[string]float64{"NDCG@1": 0, "NDCG@5": 0, "NDCG@10": 0, "HR@1": 0, "HR@5": 0, "HR@10": 0},
		Primary:       "item_match", Users: testUsers,
		// Returned targets follow HR@10; lost hits are pruned + 2 (known numbers for the lost-hit rate).
		Pruning: &results.PruningSummary{Users: testUsers, InExact: f.inExact, Pruned: f.pruned,
			Rate: float64(f.pruned) / testUsers, RateOfExact: float64(f.pruned) / float64(max(f.inExact, 1)),
			InBeam: int(math.Round(f.hr10 * testUsers)), LostHits: f.pruned + 2},
		Config: results.Config{Dataset: "Office", SplitFile: "test_5000.csv", SplitSHA256: "5p1i7", CatalogueSHA256: "ca7",
			TokenizerSHA256: "70c", ModelSHA256: "f1n9", AdapterSHA256: "ad4" + f.seed, Limit: testUsers, SelectedUsers: testUsers,
			ShardCount: 1, Beams: 10, Return: 10, Constrain: "before", LengthPenalty: 1, StopRule: "vectorized", MaxNewTokens: 128,
			Pruning: true, ExactLengthPenalty: &lp, Shard: "0/1", Model: "models/small", Adapter: filepath.Join(f.dir, "final"),
			Data: "data/Office", KVCache: true, Batch: 8},
	}
	if f.edit != nil {
		f.edit(m)
	}
	return m
}

// writeFakeRun writes f as bear train and bear eval would: train.jsonl (a run record with
// the flags, then the steps), final/, and eval/metrics.json.
func writeFakeRun(t *testing.T, f fakeRun) {
	t.Helper()
	flags := baseFlags(f.loss, f.seed, f.dir)
	for k, v := range f.extra {
		flags[k] = v
	}
	if err := os.MkdirAll(filepath.Join(f.dir, finalDir), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := trainlog.Open(filepath.Join(f.dir, logFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteRun(trainlog.Run{Split: "data/Office/train_10000.csv", Rows: 100, Flags: flags}); err != nil {
		t.Fatal(err)
	}
	for i, tps := range f.tokensPerS {
		el := 10 * float64(i+1)
		if f.elapsed != nil {
			el = f.elapsed[i]
		}
		s := trainlog.Step{Step: i + 1, Epoch: float64(i+1) / float64(len(f.tokensPerS)), Loss: 2 - 0.1*float64(i),
			TokensPerS: tps, PrunedShare: 0.1, ElapsedS: el, LR: 1e-3}
		if err := w.WriteStep(s); err != nil {
			t.Fatal(err)
		}
	}
	writeMetricsFile(t, filepath.Join(f.dir, DefaultEvalSubdir), testMetrics(f))
}

func writeMetricsFile(t *testing.T, dir string, m *results.Metrics) {
	t.Helper()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, results.MetricsName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// standardSet is the synthetic experiment of the tests: MSL and BEAR (xi 2.75, lambda 0.25)
// with seeds 1..3, and BEAR (xi 2.75, lambda 0.5) with seed 1 only, under root.
func standardSet(root string) []fakeRun {
	toy := map[string]string{"--xi": "2.75", "--lambda": "0.25"}
	other := map[string]string{"--xi": "2.75", "--lambda": "0.5"}
	var runs []fakeRun
	add := func(name, loss string, seed int, extra map[string]string, ndcg, hr float64, pruned, inExact int, tps ...float64) {
		runs = append(runs, fakeRun{dir: filepath.Join(root, name+"-"+strconv.Itoa(seed)), loss: loss, seed: strconv.Itoa(seed),
			extra: extra, ndcg10: ndcg, hr10: hr, pruned: pruned, inExact: inExact, tokensPerS: tps})
	}
	add("msl", "msl", 1, nil, 0.1, 0.2, 8, 20, 100, 300, 200)
	add("msl", "msl", 2, nil, 0.2, 0.3, 6, 20, 110, 130, 120)
	add("msl", "msl", 3, nil, 0.3, 0.4, 4, 20, 90, 95, 400, 100)
	add("bear", "bear", 1, toy, 0.15, 0.22, 4, 20, 100, 100, 100)
	add("bear", "bear", 2, toy, 0.30, 0.36, 3, 20, 120, 120, 120)
	add("bear", "bear", 3, toy, 0.35, 0.42, 1, 20, 80, 80, 80)
	add("bear-l05", "bear", 1, other, 0.12, 0.25, 5, 25, 50)
	return runs
}

func dirsOf(runs []fakeRun) []string {
	var dirs []string
	for _, r := range runs {
		dirs = append(dirs, r.dir)
	}
	return dirs
}
