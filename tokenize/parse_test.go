package tokenize

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadSplitErrors: bad input in a split file is an error naming the file and line (never a
// silently zero timestamp, a panic or a wrong line number); good unusual input is read.
func TestReadSplitErrors(t *testing.T) {
	cat := &Catalogue{IDs: []int{1, 2, 3}, Titles: map[int]string{1: "a", 2: "b", 3: "c"}}
	const header = "user_id,item_ids,timestamp\n"
	cases := []struct {
		name, csv string
		want      string // error substring with the line ("" = no error)
	}{
		{"ok", header + `7,"[1, 2]",100` + "\n", ""},
		{"bom header", "\ufeff" + header + `7,"[1, 2]",100` + "\n", ""},
		{"bad timestamp", header + `7,"[1, 2]",100` + "\n" + `8,"[1, 3]",yesterday` + "\n", ":3: timestamp"},
		{"empty timestamp", header + `7,"[1, 2]",` + "\n", ":2: timestamp"},
		{"short record", header + `7,"[1, 2]"` + "\n", ":2: "},
		{"long record", header + `7,"[1, 2]",100,9` + "\n", ":2: "},
		{"line after a quoted newline", header + `7,"[1,` + "\n" + ` 2]",100` + "\n" + `8,"[1]",x` + "\n", ":4: timestamp"},
		{"bad user", header + `u7,"[1, 2]",100` + "\n", ":2: user_id"},
		{"bad list", header + `7,"[1; 2]",100` + "\n", ":2: item_ids"},
		{"no known item", header + `7,"[9]",100` + "\n", ":2: no item"},
		{"duplicate column", "user_id,item_ids,item_ids\n" + `7,"[1]","[2]"` + "\n", "item_ids"},
		{"missing column", "user_id,items\n" + `7,"[1]"` + "\n", "lacks"},
		{"bare quote", header + `7,"[1, 2]"x,100` + "\n", ":2: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "train.csv", c.csv)
			rows, err := ReadSplit(path, cat)
			if c.want == "" {
				if err != nil || len(rows) != 1 || rows[0].Timestamp != 100 || !slices.Equal(rows[0].HistoryIDs, []int{1}) {
					t.Fatalf("rows %+v, err %v", rows, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: rows %+v", rows)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %s and %q", err, path, c.want)
			}
		})
	}
}

// TestReadCatalogueErrors: ids that are not canonical decimals, ids given twice (Go's JSON
// decoder would keep the last one silently), null titles, invalid UTF-8 and trailing data are
// errors naming the file; an empty title is kept (Book's catalogue has one).
func TestReadCatalogueErrors(t *testing.T) {
	cases := []struct {
		name, json string
		want       string // error substring ("" = no error)
	}{
		{"ok", `{"2": "b", "1": ""}`, ""},
		{"duplicate id", `{"1": "a", "2": "b", "1": "c"}`, `item id "1" appears twice`},
		{"same id twice", `{"1": "a", "01": "b"}`, `"01"`},
		{"plus sign", `{"+1": "a"}`, `"+1"`},
		{"negative", `{"-1": "a"}`, `"-1"`},
		{"not a number", `{"x": "a"}`, `"x"`},
		{"null title", `{"1": null}`, `item 1: title is null`},
		{"number title", `{"1": 5}`, `item 1`},
		{"not an object", `["a"]`, `object`},
		{"trailing data", `{"1": "a"} {}`, `after the object`},
		{"syntax error line", "{\n\"1\": \"a\",\n\"2\" \"b\"}", `line 3`},
		{"invalid utf-8", "{\"1\": \"caf\xe9\"}", `UTF-8`},
		{"empty", ``, `catalogue`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "id2name4Rec.json", c.json)
			cat, err := ReadCatalogue(path)
			if c.want == "" {
				if err != nil || !slices.Equal(cat.IDs, []int{1, 2}) || cat.Titles[1] != "" || cat.Titles[2] != "b" {
					t.Fatalf("catalogue %+v, err %v", cat, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", cat)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %s and %q", err, path, c.want)
			}
		})
	}
}
