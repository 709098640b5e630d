package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// droppedData writes an Office-named dataset folder: the Office catalogue, the first 16 training
// rows with an id missing from the catalogue added to every other row (8 in all), and the first
// 3 test rows.
func droppedData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Office")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cat, err := os.ReadFile(filepath.Join(officeData, "id2name4Rec.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "id2name4Rec.json"), cat, 0o644)
	lines := func(name string, n int) []string {
		f, err := os.Open(filepath.Join(officeData, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []string
		for sc := bufio.NewScanner(f); sc.Scan() && len(out) <= n; {
			out = append(out, sc.Text())
		}
		return out
	}
	train := lines("train_10000.csv", 16)
	for i := 1; i < len(train); i += 2 {
		train[i] = strings.Replace(train[i], `"[`, `"[999999, `, 1)
	}
	os.WriteFile(filepath.Join(dir, "train_16.csv"), []byte(strings.Join(train, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "test_3.csv"), []byte(strings.Join(lines("test_5000.csv", 3), "\n")+"\n"), 0o644)
	return dir
}

// TestRunOutputs: a one-epoch run with an evaluation reports the dropped ids (start-up message
// and the log's run record), evaluates with the official max_new_tokens, and writes every output
// file with mode 0644 (the evaluation's predictions and metrics were 0600).
func TestRunOutputs(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	out := filepath.Join(t.TempDir(), "run")
	o := smallRun(tinyModel(t), tokenizer(t), out, lossgrad.BEAR)
	o.Data, o.Samples, o.Epochs, o.EvalUsers, o.CheckpointEvery = droppedData(t), 0, 1, 2, 0
	var logged []string
	o.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if len(logged) == 0 || !strings.Contains(logged[0], "training on 16 rows") || !strings.Contains(logged[0], "8 item ids") {
		t.Errorf("start-up message %q, want 16 rows and 8 dropped ids", logged)
	}
	runs, err := trainlog.ReadRuns(filepath.Join(out, LogFile))
	if err != nil || len(runs) != 1 || runs[0].Step != 0 || runs[0].Rows != 16 || runs[0].DroppedIDs != 8 {
		t.Errorf("run records %+v (%v), want one at step 0 with 16 rows and 8 dropped ids", runs, err)
	} else if f := runs[0].Settings; f["loss"] != "bear" || f["seed"] != "42" || f["model"] != o.Model ||
		f["lora_targets"] != "q_proj,v_proj" || f["eval_users"] != "2" || f["threads"] != "1" || f["samples"] != "16" {
		t.Errorf("run record settings %v, want the run's loss, seed, model path, LoRA targets, eval users, threads and rows", f)
	} else {
		for k := range f {
			if !slices.Contains(trainlog.Settings, k) {
				t.Errorf("run record setting %q is not one of trainlog.Settings", k)
			}
		}
	}
	var m struct {
		Config struct {
			MaxNewTokens int `json:"max_new_tokens"`
		} `json:"config"`
	}
	data, _ := os.ReadFile(filepath.Join(out, "eval-epoch-1", "metrics.json"))
	if err := json.Unmarshal(data, &m); err != nil || m.Config.MaxNewTokens != 128 {
		t.Errorf("evaluation max_new_tokens %d (%v), want the official 128", m.Config.MaxNewTokens, err)
	}
	for _, name := range []string{LogFile, checkpointFile, "final/adapter_model.safetensors", "final/adapter_config.json",
		"epoch-1/adapter_model.safetensors", "eval-epoch-1/metrics.json", "eval-epoch-1/predictions.json"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644", name, st.Mode(), err)
		}
	}
}

// TestEvalBeamsCheckedFirst: --eval-users over a catalogue with fewer distinct titles than the
// evaluation's 10 beams is refused before any training, naming the numbers.
func TestEvalBeamsCheckedFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Office")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "id2name4Rec.json"), []byte(`{"1": "Red Pen", "2": "Paper Clips", "3": "Stapler"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "train_2.csv"), []byte("user_id,item_ids\n1,\"[1, 2, 3]\"\n2,\"[3, 2, 1]\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "test_1.csv"), []byte("user_id,item_ids\n1,\"[1, 2]\"\n"), 0o644)
	out := filepath.Join(t.TempDir(), "run")
	o := smallRun(tinyModel(t), tokenizer(t), out, lossgrad.BEAR)
	o.Data, o.Samples, o.EvalUsers = dir, 0, 1
	o.Batch.Batch, o.Batch.NormGroup, o.Batch.Micro = 2, 2, 2
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "train.Options.EvalUsers 1") || !strings.Contains(err.Error(), "10 beams") ||
		!strings.Contains(err.Error(), "3 distinct item sequences") {
		t.Errorf("10 evaluation beams over 3 titles: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(out, LogFile)); !os.IsNotExist(statErr) {
		t.Errorf("the refused run started a log: %v", statErr)
	}
}
