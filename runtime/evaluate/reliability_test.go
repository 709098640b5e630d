package evaluate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/tokenize"
)

// otherTiny writes a second tiny checkpoint of the same shape, file names and sizes as tinyDir
// with other random weights.
func otherTiny(t *testing.T) string {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 8, Std: tinyStd}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestModelsIdentifiedByContent: shards of two checkpoints that differ only in their weights
// (same shape, file names and sizes) do not merge, and an interrupted evaluation does not resume
// with the other model; an interrupt stops the evaluation at once, its journal holding exactly
// the finished batch.
func TestModelsIdentifiedByContent(t *testing.T) {
	other := otherTiny(t)
	root := t.TempDir()
	var shards []string
	for i, model := range []string{tinyDir, other} {
		o := tinyOptions(t, filepath.Join(root, "shard", string(rune('0'+i))), 4)
		o.Model, o.Shard = model, Shard{i, 2}
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, o.Out)
	}
	if _, err := Merge(shards, filepath.Join(root, "merged")); err == nil || !strings.Contains(err.Error(), "model_sha256") {
		t.Errorf("merging the shards of two models: %v, want a refusal naming model_sha256", err)
	}

	o := tinyOptions(t, filepath.Join(root, "interrupted"), 8) // two batches of 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Progress = func(done, total int) {
		if done == 4 {
			cancel()
		}
	}
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted evaluation: %v, want context.Canceled", err)
	}
	journal, _ := os.ReadFile(filepath.Join(o.Out, journalName))
	if n := bytes.Count(journal, []byte("\n")) - 1; n != 4 {
		t.Errorf("the journal holds %d users after the interrupt, want the first batch's 4", n)
	}
	o.Model, o.Progress = other, nil
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "model_sha256") {
		t.Errorf("resuming with another model: %v, want a refusal naming model_sha256", err)
	}
}

// TestOutClaimed: --out may not be an input, inside one or hold one, and a folder another
// evaluation holds is refused with the holder's pid.
func TestOutClaimed(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{tinyDir, "is the input"},
		{filepath.Join(tinyDir, "eval"), "lies inside the input"},
		{filepath.Join(officeData, "eval"), "lies inside the input"},
	} {
		_, err := Run(context.Background(), tinyOptions(t, c.out, 2))
		if err == nil || !strings.Contains(err.Error(), "evaluate.Options.Out") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--out %s: %v, want %q", c.out, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tinyDir, "eval")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused evaluation wrote into the model folder")
	}
	out := filepath.Join(t.TempDir(), "eval")
	held, err := atomicfs.LockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	_, err = Run(context.Background(), tinyOptions(t, out, 2))
	var le *atomicfs.LockedError
	if !errors.As(err, &le) || le.Owner.PID != os.Getpid() {
		t.Errorf("evaluation into a held folder: %v", err)
	}
	if _, err := Merge([]string{"a", "b"}, out); !errors.As(err, &le) {
		t.Errorf("merge into a held folder: %v", err)
	}
}

// TestVocabularyChecked: a tokenizer whose ids do not fit the model's vocabulary is refused
// before any model is loaded, with the tokenizer and the id named.
func TestVocabularyChecked(t *testing.T) {
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	cfg.VocabSize = 1000
	model := filepath.Join(t.TempDir(), "small-vocab")
	if err := hf.WriteRandom(model, cfg, hf.InitOptions{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	o := tinyOptions(t, filepath.Join(t.TempDir(), "eval"), 2)
	o.Model = model
	_, err := Run(context.Background(), o)
	var ve *tokenize.VocabError
	if !errors.As(err, &ve) || ve.Vocab != 1000 || !strings.Contains(err.Error(), o.Tokenizer) {
		t.Fatalf("vocabulary of 1000: %v", err)
	}
}

// TestNonFiniteWeights: a checkpoint with NaN weights stops the evaluation with an error that
// names the cause, instead of writing empty prediction lists and NDCG 0.
func TestNonFiniteWeights(t *testing.T) {
	p, _ := hf.LookupPreset("tiny")
	model := filepath.Join(t.TempDir(), "nan")
	if err := hf.WriteRandom(model, p.Config, hf.InitOptions{Seed: 7, Std: tinyStd}); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	w := ck.Weights[hf.FinalNormName] // bf16: 0x7fc0 is NaN
	nan := bytes.Repeat(binary.LittleEndian.AppendUint16(nil, 0x7fc0), int(w.NumElements()))
	f, err := os.OpenFile(w.File, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(nan, w.Offset)
	f.Close()
	for _, mode := range []decode.Mode{decode.AfterSoftmax, decode.BeforeSoftmax} {
		o := tinyOptions(t, filepath.Join(t.TempDir(), "eval"), 2)
		o.Model, o.Mode = model, mode
		o.Runtime.CacheDir = filepath.Join(t.TempDir(), "cache")
		_, err := Run(context.Background(), o)
		var nf *decode.NonFiniteError
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), "not finite") {
			t.Errorf("mode %v: NaN weights: %v, want a NonFiniteError", mode, err)
		}
		if _, err := os.Stat(filepath.Join(o.Out, results.MetricsName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mode %v: metrics written for a NaN model", mode)
		}
	}
}

// TestTrainingRecordModes: the official inference's constraint per training loss.
func TestTrainingRecordModes(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadTrainingRecord(dir); ok || err != nil {
		t.Fatalf("no record: ok %v, err %v", ok, err)
	}
	for loss, want := range map[string]decode.Mode{"lml": decode.AfterSoftmax, "msl": decode.BeforeSoftmax, "bear": decode.BeforeSoftmax} {
		if err := WriteTrainingRecord(dir, TrainingRecord{Loss: loss}); err != nil {
			t.Fatal(err)
		}
		rec, ok, err := ReadTrainingRecord(dir)
		if err != nil || !ok || rec.Loss != loss || OfficialMode(rec.Loss) != want {
			t.Errorf("%s: %+v %v %v, mode %v want %v", loss, rec, ok, err, OfficialMode(rec.Loss), want)
		}
	}
	os.WriteFile(filepath.Join(dir, TrainingRecordName), []byte(`{"loss": "ce"}`), 0o644)
	if _, _, err := ReadTrainingRecord(dir); err == nil || !strings.Contains(err.Error(), TrainingRecordName) {
		t.Errorf("unknown loss: %v", err)
	}
}
