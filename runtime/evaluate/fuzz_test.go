package evaluate

import (
	"bytes"
	"encoding/json"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// journalBytes is a journal as Run writes it: the configuration line and one line per record.
func journalBytes(t testing.TB, cfg results.Config, recs []results.Record) []byte {
	var b bytes.Buffer
	head, err := json.Marshal(struct {
		Config results.Config `json:"config"`
	}{cfg})
	if err != nil {
		t.Fatal(err)
	}
	b.Write(append(head, '\n'))
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

func sampleRecords() []results.Record {
	return []results.Record{
		{Instruction: "Given ...", Input: "\"A\", \"B\"\n ", Output: `"C"`, Predict: []string{`"C"`, `"D"`}, Scores: []float64{-0.5, -1.25},
			Row: 0, UserID: 804, TargetItem: 3, PredictItems: [][]int{{3}, {4, 5}}, Rank: 0, OfficialRank: 0},
		{Predict: []string{`"Café"`}, Scores: []float64{-2}, Row: 2, UserID: 12, TargetItem: 9, PredictItems: [][]int{{}}, Rank: -1, OfficialRank: -1,
			Pruning: &results.PruneInfo{BeamRank: -1, ExactRank: 3, Pruned: true, How: "pruned", Step: 2}},
	}
}

// TestParseJournal: a final line cut short is left out; any other bad line is an error naming
// its line.
func TestParseJournal(t *testing.T) {
	good := journalBytes(t, results.Config{Dataset: "Office", Beams: 10, Shard: "0/1"}, sampleRecords())
	lines := strings.SplitAfter(string(good), "\n") // config, record, record, ""
	for _, c := range []struct {
		name    string
		data    string
		records int
		keep    int
		err     string // "" for none
	}{
		{"whole", string(good), 2, len(good), ""},
		{"empty", "", 0, 0, ""},
		{"first line cut", lines[0][:10], 0, 0, ""},
		{"last record cut", lines[0] + lines[1] + lines[2][:20], 1, len(lines[0] + lines[1]), ""},
		{"cut just before its newline", lines[0] + lines[1] + strings.TrimSuffix(lines[2], "\n"), 1, len(lines[0] + lines[1]), ""},
		{"bad first line", "{\"cfg\":1}\n" + lines[1], 0, 0, ":1: not a journal's configuration line"},
		{"corrupt middle line", lines[0] + "{\"bear_row\":\n" + lines[2], 0, 0, ":2: not a record"},
		{"empty line", lines[0] + "\n" + lines[1], 0, 0, ":2: not a record"},
		{"null record", lines[0] + "null\n", 0, 0, ":2: row 0: ranks 0 and 0 out of range"},
		{"lists disagree", lines[0] + `{"predict":["a"],"scores":[],"bear_predict_items":[[1]],"bear_rank":-1,"bear_official_rank":-1}` + "\n", 0, 0, ":2: row 0: 1 predictions, 0 scores"},
		{"row twice", lines[0] + lines[1] + lines[1], 0, 0, ":3: row 0 again (first on line 2)"},
	} {
		jd, err := parseJournal("j.jsonl", []byte(c.data))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), "j.jsonl"+c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(jd.records) != c.records || jd.keep != c.keep {
			t.Errorf("%s: %d records, keep %d; want %d and %d", c.name, len(jd.records), jd.keep, c.records, c.keep)
		}
	}
}

var lineError = regexp.MustCompile(`^journal j\.jsonl:[1-9][0-9]*: `)

// FuzzJournal: on any bytes parseJournal never panics; it fails naming a line, or keeps a prefix
// of whole lines (only an unterminated tail is left out) whose records parse again the same and
// survive a write and a re-read.
func FuzzJournal(f *testing.F) {
	good := journalBytes(f, results.Config{Dataset: "Office", Beams: 10, Shard: "0/1"}, sampleRecords())
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add([]byte{})
	f.Add([]byte(`{"config":{}}`))
	f.Add([]byte("{\"config\":{}}\nnull\n"))
	f.Add(append(append([]byte{}, good...), good...))
	f.Add([]byte("{\"config\":null}\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		jd, err := parseJournal("j.jsonl", data)
		if err != nil {
			if !lineError.MatchString(err.Error()) {
				t.Fatalf("error without its line: %v", err)
			}
			return
		}
		if jd.keep > len(data) || (jd.keep > 0 && data[jd.keep-1] != '\n') || bytes.IndexByte(data[jd.keep:], '\n') >= 0 {
			t.Fatalf("keep %d of %d bytes is not the whole lines", jd.keep, len(data))
		}
		if (jd.config == nil) != (jd.keep == 0) || len(jd.records) != bytes.Count(data[:jd.keep], []byte{'\n'})-min(jd.keep, 1) {
			t.Fatalf("config %v, %d records over %d whole lines", jd.config, len(jd.records), bytes.Count(data[:jd.keep], []byte{'\n'}))
		}
		again, err := parseJournal("j.jsonl", data[:jd.keep])
		if err != nil || !reflect.DeepEqual(again, jd) {
			t.Fatalf("the kept prefix parses differently: %v", err)
		}
		if jd.config == nil {
			return
		}
		rewritten, err := parseJournal("j.jsonl", journalBytes(t, *jd.config, jd.records))
		if err != nil || !reflect.DeepEqual(rewritten.records, jd.records) {
			t.Fatalf("records do not survive a rewrite: %v", err)
		}
	})
}
