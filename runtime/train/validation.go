package train

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"github.com/bearrec/bear/tokenize"
)

// Model selection on held-out rows: after each epoch the validation rows are decoded with the
// beam search of bear eval, and best/ holds the model of the epoch with the highest NDCG@10
// (ties to the earlier epoch). The test split never selects.
const (
	validFile    = "valid.csv" // the held-out rows (Options.Valid), in the split format
	BestDir      = "best"      // the model of the best epoch
	selectMetric = "ndcg@10"
	// The Split of trainlog.Eval records.
	splitValid = "valid"
	splitTest  = "test"
)

// holdOut splits rows into those trained on and the n latest by timestamp (of equal
// timestamps, the later rows of the file), each in file order.
func holdOut(rows []tokenize.Row, n int, path string) (train, valid []tokenize.Row, err error) {
	if n >= len(rows) {
		return nil, nil, opterr.New(opt("Valid"), n, "holds out every row of %s (%d rows): nothing left to train on", path, len(rows))
	}
	if !slices.ContainsFunc(rows, func(r tokenize.Row) bool { return r.Timestamp != 0 }) {
		return nil, nil, opterr.New(opt("Valid"), n, "%s has no timestamp column to find its latest rows by: give a validation file (%s)", path, opt("ValidFile"))
	}
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rows[a].Timestamp, rows[b].Timestamp) })
	held := make([]bool, len(rows))
	for _, i := range order[len(rows)-n:] {
		held[i] = true
	}
	for i, r := range rows {
		if held[i] {
			valid = append(valid, r)
		} else {
			train = append(train, r)
		}
	}
	return train, valid, nil
}

// splitCSV writes rows in the split format (user_id,item_ids,timestamp), with the item ids the
// run uses: those missing from the catalogue are already dropped, which bear eval would drop
// too.
func splitCSV(rows []tokenize.Row) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"user_id", "item_ids", "timestamp"})
	for _, r := range rows {
		ids := make([]string, 0, len(r.HistoryIDs)+1)
		for _, id := range append(slices.Clone(r.HistoryIDs), r.TargetID) {
			ids = append(ids, strconv.Itoa(id))
		}
		w.Write([]string{strconv.Itoa(r.UserID), "[" + strings.Join(ids, ", ") + "]", strconv.FormatInt(r.Timestamp, 10)})
	}
	w.Flush()
	return b.Bytes()
}

// validation is the run's validation set: the split file evaluated after each epoch.
type validation struct {
	path   string // the split file bear eval reads (the run folder's valid.csv, or Options.ValidFile)
	rows   int
	sha256 string
	csv    []byte // the held-out rows to write to path (nil for Options.ValidFile)
}

// loadValidation prepares the validation set of o from the split's rows, and returns the rows
// left to train on.
func loadValidation(o *Options, d *tokenize.Split) (*validation, []tokenize.Row, error) {
	rows := d.Rows
	switch {
	case o.Valid > 0:
		train, held, err := holdOut(rows, o.Valid, d.Path)
		if err != nil {
			return nil, nil, err
		}
		data := splitCSV(held)
		return &validation{path: filepath.Join(o.Out, validFile), rows: len(held), sha256: fmt.Sprintf("%x", sha256.Sum256(data)), csv: data}, train, nil
	case o.ValidFile != "":
		path, held, err := d.ReadSplit(o.ValidFile)
		if err != nil {
			return nil, nil, opterr.Wrap(opt("ValidFile"), o.ValidFile, err)
		}
		sum, err := hf.FileSHA256(path)
		if err != nil {
			return nil, nil, err
		}
		ix := decode.NewIndex(d.Items.Trie())
		for i, r := range held {
			if _, ok := ix.Path(r.TargetID); !ok {
				return nil, nil, opterr.New(opt("ValidFile"), o.ValidFile, "row %d (user_id %d): the target %d has no title in the catalogue", i+2, r.UserID, r.TargetID)
			}
		}
		return &validation{path: path, rows: len(held), sha256: sum}, rows, nil
	}
	return nil, rows, nil
}

// write puts the held-out rows into the run folder (once it is claimed).
func (v *validation) write() error {
	if v == nil || v.csv == nil {
		return nil
	}
	return atomicfs.WriteBytes(v.path, v.csv)
}

// best returns the validation evaluation that selects the model among evals (nil: none):
// the highest NDCG@10, the earlier epoch on a tie.
func best(evals []trainlog.Eval) *trainlog.Eval {
	var b *trainlog.Eval
	for i := range evals {
		e := &evals[i]
		if e.Split != splitValid {
			continue
		}
		if b == nil || metric(e, selectMetric) > metric(b, selectMetric) ||
			metric(e, selectMetric) == metric(b, selectMetric) && e.Epoch < b.Epoch {
			b = e
		}
	}
	return b
}

// metric is the evaluation's metric named name (0 when it has none).
func metric(e *trainlog.Eval, name string) float64 {
	v, _ := e.Metric(name)
	return v
}

// stale counts the validated epochs after the best one, up to epoch: the epochs without
// improvement that early stopping counts.
func stale(evals []trainlog.Eval, b *trainlog.Eval, epoch int) int {
	n := 0
	for _, e := range evals {
		if e.Split == splitValid && e.Epoch > b.Epoch && e.Epoch <= epoch {
			n++
		}
	}
	return n
}

// syncBest makes best/ hold the model of the best validated epoch: after a new best, and at a
// resume (an interruption may have come between the evaluation's record and the copy).
func (j *job) syncBest(evals []trainlog.Eval) error {
	b := best(evals)
	if b == nil {
		return nil
	}
	dir := filepath.Join(j.o.Out, BestDir)
	if s, err := trainlog.ReadSelection(dir); err == nil && s.Epoch == b.Epoch && s.Split == j.d.valid.path {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.o.log("%s: %v: writing it again", dir, err)
	}
	sel := trainlog.Selection{Epoch: b.Epoch, Step: b.Step, Metric: selectMetric, Value: metric(b, selectMetric), Rows: b.Users, Split: j.d.valid.path, Rule: trainlog.SelectionRule}
	src := epochDir(j.o.Out, b.Epoch)
	err := atomicfs.WriteDir(dir, atomicfs.Replace, func(tmp string) error {
		if err := copyFiles(src, tmp); err != nil {
			return err
		}
		data, err := json.MarshalIndent(sel, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, trainlog.SelectionFile), append(data, '\n'), 0o644)
	})
	if err != nil {
		return fmt.Errorf("keeping the best epoch's model in %s: %w", dir, err)
	}
	return nil
}

// copyFiles copies the files of src into dst (hard links where the file system allows: the
// epoch folders are never modified in place, each write replaces its folder).
func copyFiles(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == trainlog.SelectionFile {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if os.Link(from, to) == nil {
			continue
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
