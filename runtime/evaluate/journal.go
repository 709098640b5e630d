package evaluate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"io"
	"os"
)

// journalName is the journal's file in the output folder.
const journalName = "journal.jsonl"

// journal holds the records of finished batches of an unfinished run: a config line, then one
// record per line, fsynced per batch.
type journal struct {
	path string
	f    *os.File
}

// journalData is what a journal file holds.
type journalData struct {
	config  *results.Config  // nil: not even the first line is complete (the run stopped at once)
	records []results.Record // in file order
	lines   []int            // the 1-based line of each record
	keep    int              // bytes of complete lines; what follows is a line cut by an interruption
}

// parseJournal reads the bytes of a journal. A final line without its '\n' was cut by an
// interruption and is left out (its batch is decoded again); every complete line must be the
// configuration (line 1) or a well-formed record, else the error names the line.
func parseJournal(path string, data []byte) (*journalData, error) {
	jd := &journalData{}
	seen := map[int]int{}
	for lineNo := 1; ; lineNo++ {
		line, _, complete := bytes.Cut(data[jd.keep:], []byte{'\n'})
		if !complete {
			return jd, nil
		}
		if err := jd.parseLine(line, lineNo, seen); err != nil {
			return nil, fmt.Errorf("journal %s:%d: %w (delete the file, or start over with evaluate.Options.Fresh)", path, lineNo, err)
		}
		jd.keep += len(line) + 1
	}
}

func (jd *journalData) parseLine(line []byte, lineNo int, seen map[int]int) error {
	if lineNo == 1 {
		var head struct {
			Config *results.Config `json:"config"`
		}
		if err := json.Unmarshal(line, &head); err != nil || head.Config == nil {
			return errors.New("not a journal's configuration line")
		}
		jd.config = head.Config
		return nil
	}
	var r results.Record
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("not a record: %w", err)
	}
	if err := checkRecord(r); err != nil {
		return err
	}
	if prev, dup := seen[r.Row]; dup {
		return fmt.Errorf("row %d again (first on line %d)", r.Row, prev)
	}
	seen[r.Row] = lineNo
	jd.records = append(jd.records, r)
	jd.lines = append(jd.lines, lineNo)
	return nil
}

// checkRecord checks what a record must satisfy whatever the split: the lists agree in length
// and the ranks point into them.
func checkRecord(r results.Record) error {
	n := len(r.Predict)
	switch {
	case r.Row < 0:
		return fmt.Errorf("bear_row %d", r.Row)
	case len(r.Scores) != n || len(r.PredictItems) != n:
		return fmt.Errorf("row %d: %d predictions, %d scores, %d item lists", r.Row, n, len(r.Scores), len(r.PredictItems))
	case r.Rank < -1 || r.Rank >= n || r.OfficialRank < -1 || r.OfficialRank >= n:
		return fmt.Errorf("row %d: ranks %d and %d out of range for %d predictions", r.Row, r.Rank, r.OfficialRank, n)
	}
	return nil
}

// openJournal opens the journal at path for appending: a new one (or with fresh, a replaced
// one) starts with cfg's line; an existing one must have been written under the same
// configuration, its records must be rows of this run (belongs), and a line cut by an
// interruption is truncated away. It returns the records already done, by row.
func openJournal(path string, cfg results.Config, fresh bool, belongs func(results.Record) error) (*journal, map[int]results.Record, error) {
	if fresh {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	jd, err := parseJournal(path, data)
	if err != nil {
		return nil, nil, err
	}
	if jd.config == nil { // no journal, or one cut inside its first line
		return newJournal(path, cfg)
	}
	if diff := results.Diff(*jd.config, cfg); diff != "" || jd.config.Shard != cfg.Shard {
		if diff == "" {
			diff = "shard " + jd.config.Shard + " vs " + cfg.Shard
		}
		return nil, nil, fmt.Errorf("journal %s belongs to a run with another configuration (%s): use another evaluate.Options.Out, or evaluate.Options.Fresh to discard it", path, diff)
	}
	done := map[int]results.Record{}
	for i, r := range jd.records {
		if belongs != nil {
			if err := belongs(r); err != nil {
				return nil, nil, fmt.Errorf("journal %s:%d: %w (delete the file, or start over with evaluate.Options.Fresh)", path, jd.lines[i], err)
			}
		}
		done[r.Row] = r
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := f.Truncate(int64(jd.keep)); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &journal{path, f}, done, nil
}

// newJournal creates (or empties) the journal and writes cfg's line.
func newJournal(path string, cfg results.Config) (*journal, map[int]results.Record, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	line, _ := json.Marshal(struct {
		Config results.Config `json:"config"`
	}{cfg})
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &journal{path, f}, map[int]results.Record{}, nil
}

// Append writes one batch's records and syncs them to disk.
func (j *journal) Append(recs []results.Record) error {
	var b bytes.Buffer
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if _, err := j.f.Write(b.Bytes()); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	return j.f.Sync()
}

func (j *journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
