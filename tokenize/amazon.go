package tokenize

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Catalogue maps item ids to titles (id2name4Rec.json). Several ids may share a title.
type Catalogue struct {
	// IDs lists the item ids in increasing order.
	IDs []int
	// Titles maps an item id to its title.
	Titles map[int]string
}

// ReadCatalogue reads an id2name4Rec.json file: a JSON object from item id (a decimal string)
// to title.
func ReadCatalogue(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read catalogue %s: %w", path, err)
	}
	c := &Catalogue{Titles: make(map[int]string, len(raw))}
	for k, v := range raw {
		id, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("read catalogue %s: item id %q: %w", path, k, err)
		}
		c.Titles[id] = v
		c.IDs = append(c.IDs, id)
	}
	sort.Ints(c.IDs)
	return c, nil
}

// MaxHistory is the longest history the data files hold (11 ids per row: 10 + the target).
const MaxHistory = 10

// Row is one line of a split file turned into an example.
type Row struct {
	UserID int
	// HistoryIDs and History are the items before the target, oldest first, at most MaxHistory.
	HistoryIDs []int
	History    []string
	// TargetID and Target are the last item of the row.
	TargetID int
	Target   string
	// Timestamp is the row's timestamp column (0 if absent).
	Timestamp int64
	// DroppedIDs counts the row's item ids that are missing from the catalogue and were
	// dropped, as the official data code drops them, before the target was chosen.
	DroppedIDs int
}

// DroppedIDs is the number of item ids missing from the catalogue over rows.
func DroppedIDs(rows []Row) int {
	n := 0
	for _, r := range rows {
		n += r.DroppedIDs
	}
	return n
}

// ReadSplit reads a train_*.csv or test_*.csv file (columns found by header name: user_id,
// item_ids, and optionally timestamp; other columns are ignored). As the official data code
// does, the ids of item_ids (a Python-style list) that are missing from the catalogue are
// dropped first; then the last remaining id is the target and the ones before it the history.
// The official code keeps all of them (the files hold at most 11 ids); we keep the last
// MaxHistory, which is the same on these files. Rows left with no item are an error.
func ReadSplit(path string, cat *Catalogue) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read split: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read split %s: header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	ui, ok1 := col["user_id"]
	ii, ok2 := col["item_ids"]
	ti, hasTS := col["timestamp"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("read split %s: header %q lacks user_id or item_ids", path, header)
	}
	var rows []Row
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read split %s: %w", path, err)
		}
		user, err := strconv.Atoi(strings.TrimSpace(rec[ui]))
		if err != nil {
			return nil, fmt.Errorf("read split %s:%d: user_id: %w", path, line, err)
		}
		ids, err := parseIDList(rec[ii])
		if err != nil {
			return nil, fmt.Errorf("read split %s:%d: item_ids: %w", path, line, err)
		}
		kept := ids[:0]
		for _, id := range ids {
			if _, ok := cat.Titles[id]; ok {
				kept = append(kept, id)
			}
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("read split %s:%d: no item of the row is in the catalogue", path, line)
		}
		row := Row{UserID: user, TargetID: kept[len(kept)-1], DroppedIDs: len(ids) - len(kept)}
		row.Target = cat.Titles[row.TargetID]
		hist := kept[:len(kept)-1]
		if len(hist) > MaxHistory {
			hist = hist[len(hist)-MaxHistory:]
		}
		row.HistoryIDs = append([]int(nil), hist...)
		for _, id := range hist {
			row.History = append(row.History, cat.Titles[id])
		}
		if hasTS {
			row.Timestamp, _ = strconv.ParseInt(strings.TrimSpace(rec[ti]), 10, 64)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// parseIDList parses a Python list of integers such as "[1, 2, 3]".
func parseIDList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("%q is not a list", s)
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Dataset is one Amazon dataset folder: its prompt strings and catalogue; its split files are
// read on demand (ReadSplit), since a job needs one of them.
type Dataset struct {
	Name      string
	Dir       string
	Prompt    Prompt
	Catalogue *Catalogue
}

// OpenDataset reads dir/id2name4Rec.json (which must list items) with the prompt of the dataset
// called name (see DatasetPrompt); an empty name is inferred from the folder's name.
func OpenDataset(dir, name string) (*Dataset, error) {
	if name == "" {
		var err error
		if name, err = InferDataset(dir); err != nil {
			return nil, err
		}
	}
	p, err := DatasetPrompt(name)
	if err != nil {
		return nil, err
	}
	catPath := filepath.Join(dir, "id2name4Rec.json")
	cat, err := ReadCatalogue(catPath)
	if err != nil {
		return nil, err
	}
	if len(cat.IDs) == 0 {
		return nil, fmt.Errorf("catalogue %s: no items", catPath)
	}
	return &Dataset{Name: name, Dir: dir, Prompt: p, Catalogue: cat}, nil
}

// ReadSplit resolves a split (see SplitPath) and reads its rows; an empty split is an error.
func (d *Dataset) ReadSplit(split string) (path string, rows []Row, err error) {
	if path, err = SplitPath(d.Dir, split); err != nil {
		return "", nil, err
	}
	if rows, err = ReadSplit(path, d.Catalogue); err != nil {
		return "", nil, err
	}
	if len(rows) == 0 {
		return "", nil, fmt.Errorf("split %s: no rows (empty split)", path)
	}
	return path, rows, nil
}

// InferDataset maps a data folder's base name to a dataset of DatasetPrompt (case-insensitive:
// "office" is Office).
func InferDataset(dir string) (string, error) {
	base := filepath.Base(filepath.Clean(dir))
	for _, n := range append(Datasets(), "Amazon_Books", "amazon_game") {
		if strings.EqualFold(n, base) {
			return n, nil
		}
	}
	return "", fmt.Errorf("cannot tell the dataset from the folder name %q (known: %s): pass --dataset", base, strings.Join(Datasets(), ", "))
}

// SplitPath resolves a split name: an existing file (as given, or inside dir), else the unique
// NAME_*.csv in dir (test -> test_5000.csv, train -> train_10000.csv).
func SplitPath(dir, split string) (string, error) {
	for _, p := range []string{filepath.Join(dir, split), split} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, split+"_*.csv"))
	switch len(m) {
	case 1:
		return m[0], nil
	case 0:
		return "", fmt.Errorf("split %q: no file %s nor %s_*.csv in %s", split, split, split, dir)
	}
	return "", fmt.Errorf("split %q: several files match in %s (%s): name one", split, dir, strings.Join(m, ", "))
}
