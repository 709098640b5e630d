package tokenize

import (
	"bytes"
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
	"unicode/utf8"
)

// CatalogueFile is the catalogue's file in a dataset folder.
const CatalogueFile = "id2name4Rec.json"

// Catalogue maps item ids to titles (id2name4Rec.json). Several ids may share a title.
type Catalogue struct {
	Path   string // the file it was read from
	SHA256 string // of the file's bytes
	// IDs lists the item ids in increasing order.
	IDs []int
	// Titles maps an item id to its title.
	Titles map[int]string
}

// ReadCatalogue reads an id2name4Rec.json file: a JSON object from item id (a decimal string)
// to title. Anything else is an error naming the file (and the line for syntax errors): an id
// that is not a canonical non-negative decimal ("01", "+1" would alias another id), an id
// given twice (a JSON decoder keeps the last one silently), a title that is not a string,
// invalid UTF-8 (Python's json.load refuses it too) or data after the object. Empty titles
// are kept: Book's catalogue has one.
func ReadCatalogue(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	c, err := parseCatalogue(data)
	if err != nil {
		return nil, fmt.Errorf("read catalogue %s: %w", path, err)
	}
	c.Path, c.SHA256 = path, sha256Hex(data)
	return c, nil
}

func parseCatalogue(data []byte) (*Catalogue, error) {
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		return nil, fmt.Errorf("line %d: invalid UTF-8 (byte offset %d): save the file as UTF-8", lineAt(data, off), off)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, jsonError(data, dec, err)
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object from item id to title, got %v", tok)
	}
	c := &Catalogue{Titles: map[int]string{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(data, dec, err)
		}
		key, _ := tok.(string) // object keys are strings
		id, err := strconv.Atoi(key)
		if err != nil || id < 0 || strconv.Itoa(id) != key {
			return nil, fmt.Errorf("line %d: item id %q is not a non-negative decimal number written without sign or leading zeros", lineAt(data, int(dec.InputOffset())), key)
		}
		if _, dup := c.Titles[id]; dup {
			return nil, fmt.Errorf("line %d: item id %q appears twice", lineAt(data, int(dec.InputOffset())), key)
		}
		var title *string
		if err := dec.Decode(&title); err != nil {
			return nil, jsonError(data, dec, fmt.Errorf("item %d: %w", id, err))
		}
		if title == nil {
			return nil, fmt.Errorf("line %d: item %d: title is null", lineAt(data, int(dec.InputOffset())), id)
		}
		c.Titles[id] = *title
		c.IDs = append(c.IDs, id)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonError(data, dec, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("line %d: data after the object", lineAt(data, int(dec.InputOffset())))
	}
	sort.Ints(c.IDs)
	return c, nil
}

// jsonError puts the line of the decoder's position (or of a syntax error) into err.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	off := int(dec.InputOffset())
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off = int(syn.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("line %d: unexpected end of the JSON data", lineAt(data, len(data)))
	}
	return fmt.Errorf("line %d: %w", lineAt(data, off), err)
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:min(max(off, 0), len(data))], []byte{'\n'})
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// MaxHistory is the longest history the data files hold (11 ids per row: 10 + the target):
// a row's (and a recommendation's) history keeps its latest MaxHistory items.
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
// MaxHistory, which is the same on these files. Rows left with no item, a bad user id, id list
// or timestamp, a record with more or fewer fields than the header and a header naming a
// column twice are errors naming the file and line.
func ReadSplit(path string, cat *Catalogue) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read split: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f) // FieldsPerRecord 0: every record has the header's field count
	cols, err := readSplitHeader(r)
	if err != nil {
		return nil, fmt.Errorf("read split %s: %w", path, err)
	}
	var rows []Row
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			return nil, fmt.Errorf("read split %s:%d: the record has %d fields, the header %d", path, pe.StartLine, len(rec), r.FieldsPerRecord)
		}
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("read split %s:%d: %w", path, pe.Line, pe.Err)
		}
		if err != nil {
			return nil, fmt.Errorf("read split %s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		row, err := cols.row(rec, cat)
		if err != nil {
			return nil, fmt.Errorf("read split %s:%d: %w", path, line, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// splitColumns are the positions of the columns ReadSplit reads (timestamp -1 if absent).
type splitColumns struct{ user, items, timestamp int }

func readSplitHeader(r *csv.Reader) (splitColumns, error) {
	header, err := r.Read()
	if err != nil {
		return splitColumns{}, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) // a byte order mark, as pandas ignores it
		if _, dup := col[h]; dup {
			return splitColumns{}, fmt.Errorf("header %q names column %q twice", header, h)
		}
		col[h] = i
	}
	c := splitColumns{timestamp: -1}
	var ok1, ok2 bool
	c.user, ok1 = col["user_id"]
	c.items, ok2 = col["item_ids"]
	if ts, ok := col["timestamp"]; ok {
		c.timestamp = ts
	}
	if !ok1 || !ok2 {
		return splitColumns{}, fmt.Errorf("header %q lacks user_id or item_ids", header)
	}
	return c, nil
}

// row turns one record into a Row (see ReadSplit).
func (c splitColumns) row(rec []string, cat *Catalogue) (Row, error) {
	user, err := strconv.Atoi(strings.TrimSpace(rec[c.user]))
	if err != nil {
		return Row{}, fmt.Errorf("user_id: %w", err)
	}
	ids, err := parseIDList(rec[c.items])
	if err != nil {
		return Row{}, fmt.Errorf("item_ids: %w", err)
	}
	kept := make([]int, 0, len(ids))
	for _, id := range ids {
		if _, ok := cat.Titles[id]; ok {
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 {
		return Row{}, fmt.Errorf("no item of the row is in the catalogue")
	}
	row := Row{UserID: user, TargetID: kept[len(kept)-1], DroppedIDs: len(ids) - len(kept)}
	row.Target = cat.Titles[row.TargetID]
	hist := kept[:len(kept)-1]
	if len(hist) > MaxHistory {
		hist = hist[len(hist)-MaxHistory:]
	}
	row.HistoryIDs = hist
	for _, id := range hist {
		row.History = append(row.History, cat.Titles[id])
	}
	if c.timestamp >= 0 {
		if row.Timestamp, err = strconv.ParseInt(strings.TrimSpace(rec[c.timestamp]), 10, 64); err != nil {
			return Row{}, fmt.Errorf("timestamp %q is not an integer (Unix seconds)", rec[c.timestamp])
		}
	}
	return row, nil
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
		if name, err = inferDataset(dir); err != nil {
			return nil, err
		}
	}
	p, err := DatasetPrompt(name)
	if err != nil {
		return nil, err
	}
	catPath := filepath.Join(dir, CatalogueFile)
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

// inferDataset maps a data folder's base name to a dataset of DatasetPrompt (case-insensitive:
// "office" is Office).
func inferDataset(dir string) (string, error) {
	base := filepath.Base(filepath.Clean(dir))
	for _, n := range append(datasets(), "Amazon_Books", "amazon_game") {
		if strings.EqualFold(n, base) {
			return n, nil
		}
	}
	return "", &DatasetError{Folder: base}
}

// DatasetError says that a data folder's name is no dataset of DatasetPrompt: the dataset must
// be named.
type DatasetError struct{ Folder string }

func (e *DatasetError) Error() string {
	return fmt.Sprintf("cannot tell the dataset from the folder name %q (known: %s): name the dataset", e.Folder, strings.Join(datasets(), ", "))
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
