package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// Names inside a run folder, as bear train and bear eval write them.
const (
	logFile           = "train.jsonl"            // runtime/train.LogFile
	checkpointFile    = "checkpoint.safetensors" // runtime/train's checkpoint file
	finalDir          = "final"                  // the adapter (or checkpoint) at the end of the run
	DefaultEvalSubdir = "eval"                   // RUN_DIR/eval: bear eval --out RUN_DIR/eval
	checkpointMetaKey = "bear_train_state"       // the checkpoint's metadata entry (runtime/train)
)

// metricKeys are the headline metrics of metrics.json, in table order.
var metricKeys = []string{"NDCG@1", "NDCG@5", "NDCG@10", "HR@1", "HR@5", "HR@10"}

// Run is one run folder as the report reads it: a bear train run with its evaluation, or a
// plain bear eval folder (Loss, Seed, Flags and Steps empty).
type Run struct {
	Dir     string // the folder as given
	EvalDir string // the folder holding metrics.json
	Loss    string // "--loss" of the run; "" for a plain evaluation folder
	Seed    string // "--seed" of the run
	// Flags is every recorded setting of the run (trainlog.Run.Settings) keyed by bear train's
	// flags, or with logs of older runs the identity in the checkpoint's metadata.
	Flags               map[string]string
	FlagsFromCheckpoint bool // Flags came from the checkpoint: no paths or machine settings
	Steps               []trainlog.Step
	Metrics             *results.Metrics
	Setting             string // the setting label, set by build
	// ModelUsed says which of a training run's models its evaluation evaluated, and why.
	ModelUsed string
}

// IsTraining reports whether the run is a bear train run (not a plain evaluation folder).
func (r *Run) IsTraining() bool { return r.Steps != nil }

// readRun reads dir: a finished bear train run (train.jsonl, final/, and its evaluation in
// dir/evalSubdir/metrics.json), or, when dir has no train.jsonl, a bear eval folder. Errors
// name the folder or file at fault and what to do.
func readRun(dir, evalSubdir string) (*Run, error) {
	if evalSubdir == "" {
		evalSubdir = DefaultEvalSubdir
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("run folder %s is a file, want a bear train or bear eval output folder", dir)
	}
	if exists(filepath.Join(dir, logFile)) {
		return readTraining(dir, evalSubdir)
	}
	if exists(filepath.Join(dir, results.MetricsName)) {
		m, err := readMetrics(dir)
		if err != nil {
			return nil, err
		}
		return &Run{Dir: dir, EvalDir: dir, Metrics: m}, nil
	}
	return nil, fmt.Errorf("%s: neither a bear train run folder (no %s) nor a bear eval folder (no %s)", dir, logFile, results.MetricsName)
}

// readTraining reads a bear train run folder and its evaluation.
func readTraining(dir, evalSubdir string) (*Run, error) {
	logPath := filepath.Join(dir, logFile)
	steps, evals, err := trainlog.Read(logPath)
	if err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%s: no step records: the run has not trained", logPath)
	}
	if !exists(filepath.Join(dir, finalDir)) {
		return nil, fmt.Errorf("%s: no %s/ folder: the run has not finished (continue it with bear train --resume %s --out %s and its flags)",
			dir, finalDir, dir, dir)
	}
	flags, fromCheckpoint, err := readFlags(dir)
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, EvalDir: filepath.Join(dir, evalSubdir), Loss: flags["--loss"], Seed: flags["--seed"], Flags: flags,
		FlagsFromCheckpoint: fromCheckpoint, Steps: steps}
	if r.Loss == "" || r.Seed == "" {
		return nil, fmt.Errorf("%s: the recorded flags lack --loss or --seed", dir)
	}
	if !exists(filepath.Join(r.EvalDir, results.MetricsName)) {
		model := finalDir // what the run chose: best/ when it validated
		if exists(filepath.Join(dir, bestDir)) {
			model = bestDir
		}
		return nil, fmt.Errorf("%s: missing: evaluate the run with bear eval --model %s --adapter %s --data %s --constrain before --pruning --out %s "+
			"(or name its evaluation subfolder with --eval-subdir)",
			filepath.Join(r.EvalDir, results.MetricsName), orPlaceholder(flags["--model"], "BASE"), filepath.Join(dir, model),
			orPlaceholder(flags["--data"], "DATA"), r.EvalDir)
	}
	if r.Metrics, err = readMetrics(r.EvalDir); err != nil {
		return nil, err
	}
	if r.ModelUsed, err = modelUsed(r, evals); err != nil {
		return nil, err
	}
	return r, nil
}

// readFlags returns the flags of the latest run record that has them, or else the identity
// recorded in the checkpoint (logs written before run records carried flags).
func readFlags(dir string) (flags map[string]string, fromCheckpoint bool, err error) {
	recs, err := trainlog.ReadRuns(filepath.Join(dir, logFile))
	if err != nil {
		return nil, false, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if len(recs[i].Settings) > 0 {
			return flagsOf(recs[i].Settings), false, nil
		}
	}
	ck := filepath.Join(dir, checkpointFile)
	if !exists(ck) {
		return nil, false, fmt.Errorf("%s: no record of the run's flags: no run record with flags in %s and no %s", dir, logFile, checkpointFile)
	}
	_, meta, err := hf.ReadSafetensorsHeader(ck)
	if err != nil {
		return nil, false, err
	}
	var st struct {
		Identity map[string]string `json:"identity"`
	}
	if err := json.Unmarshal([]byte(meta[checkpointMetaKey]), &st); err != nil || len(st.Identity) == 0 {
		return nil, false, fmt.Errorf("%s: no run identity in its metadata (not a bear train checkpoint?)", ck)
	}
	return flagsOf(trainlog.CurrentSettings(st.Identity)), true, nil
}

// hashFlags are the report's names of the inputs' content hashes among the settings.
var hashFlags = map[string]string{
	"model_sha256": "--model (content sha256)", "split_sha256": "--data split (sha256)", "tokenizer_sha256": "--tokenizer (sha256)",
}

// flagsOf keys a run's settings (trainlog.Run.Settings: "norm_group", "model_sha256") by bear
// train's flags ("--norm-group"), and the content hashes by their flag with what was hashed.
func flagsOf(settings map[string]string) map[string]string {
	flags := make(map[string]string, len(settings))
	for k, v := range settings {
		f, ok := hashFlags[k]
		if !ok {
			f = "--" + strings.ReplaceAll(k, "_", "-")
		}
		flags[f] = v
	}
	return flags
}

// readMetrics reads dir/metrics.json and checks that it has every headline metric.
func readMetrics(dir string) (*results.Metrics, error) {
	path := filepath.Join(dir, results.MetricsName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Users < 1 {
		return nil, fmt.Errorf("%s: %d users evaluated, want at least one", path, m.Users)
	}
	h := m.Headline()
	for _, k := range metricKeys {
		if v, ok := h[k]; !ok || math.IsNaN(v) {
			return nil, fmt.Errorf("%s: no %s in its %s metrics", path, k, m.Primary)
		}
	}
	return &m, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// orPlaceholder is v, or the placeholder where a run's log does not record it.
func orPlaceholder(v, placeholder string) string {
	if v == "" {
		return placeholder
	}
	return v
}
