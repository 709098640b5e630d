package evaluate

import (
	"context"
	"errors"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/hf"
)

// TestPruningRowBound: the exact search's memory bound (ExactMemory, a row count at the model's
// shape) holds the pruning analysis' memory without changing its results: a bound that every
// user fits alone gives the records of the unbounded run (the users of a batch that do not fit
// together are searched in turns), and a bound that a user alone exceeds stops the run with a
// *decode.RowBudgetError, explained with the user, the memory and the flags to change, instead
// of growing until the machine runs out of memory.
func TestPruningRowBound(t *testing.T) {
	data := filepath.Join(t.TempDir(), "Office")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	cat := `{"1": "Red Pen", "2": "Paper Clips", "3": "Blue Stapler", "4": "Red Pencil Case"}`
	split := "user_id,item_ids\n11,\"[1, 2, 3]\"\n12,\"[3, 4, 1]\"\n"
	if err := os.WriteFile(filepath.Join(data, "id2name4Rec.json"), []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "test_2.csv"), []byte(split), 0o644); err != nil {
		t.Fatal(err)
	}
	rowBytes := testRowBytes(t, smallOptions(t, data, ""))
	run := func(name string, maxRows int) ([]results.Record, error) {
		o := smallOptions(t, data, filepath.Join(t.TempDir(), name))
		o.Pruning, o.ExactLengthPenalty = true, 1 // length-normalised: nothing is pruned
		o.ExactMemory = NoExactMemory
		if maxRows > 0 {
			o.ExactMemory = int64(maxRows)*rowBytes + rowBytes/2
		}
		if _, err := Run(context.Background(), o); err != nil {
			return nil, err
		}
		_, recs, err := results.Read(o.Out)
		return recs, err
	}
	ref, err := run("unbounded", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Four item sequences: no user has more than four open prefixes of one depth, and the
	// batch's two users need up to eight rows together.
	got, err := run("bounded", 4)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ref) {
		t.Errorf("a bound of 4 rows changed the records:\n%+v\nunbounded:\n%+v", got, ref)
	}
	_, err = run("too-small", 1)
	var be *decode.RowBudgetError
	if !errors.As(err, &be) || be.MaxRows != 1 || be.Rows < 2 || !strings.Contains(err.Error(), "evaluate.Options.ExactMemory") ||
		!strings.Contains(err.Error(), "for user 1") {
		t.Fatalf("a bound of 1 row: %v, want a RowBudgetError naming the user and the memory bound", err)
	}
}

// testRowBytes is the row estimate a run of o makes: the model's shape, the longest prompt and
// the longest title.
func testRowBytes(t *testing.T, o Options) int64 {
	t.Helper()
	o.defaults()
	d, err := loadData(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := hf.ReadConfig(o.Model)
	if err != nil {
		t.Fatal(err)
	}
	longest, err := checkPrompts(o, d, cfg.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	return exactRowBytes(cfg, longest+maxTitleTokens(d))
}

// TestExactRowBytes: the row estimate at the shapes the flag's help quotes.
func TestExactRowBytes(t *testing.T) {
	for _, c := range []struct {
		preset string
		rows   int // rows of 400-token sequences in DefaultExactMemory
	}{{"tiny", 2095}, {"small", 838}, {"llama-3.2-1b", 32}} {
		p, _ := hf.LookupPreset(c.preset)
		if got := newExactBudget(0, p.Config, 400).rows; got != c.rows {
			t.Errorf("%s: %d rows of 400 tokens in the default bound, want %d", c.preset, got, c.rows)
		}
	}
}
