package trainset

import (
	"errors"
	"github.com/bearrec/bear/internal/opterr"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/tokenize"
)

// TestBuildExamples checks every example of the Office sample against the official format:
// the decoded text, the label start (token count of the prompt with an empty output), the
// supervised tokens and the allowed set of every supervised position.
func TestBuildExamples(t *testing.T) {
	f := loadOffice(t)
	s := f.build(t, f.rows, DefaultOptions())
	if s.Len() != len(f.rows) {
		t.Fatalf("%d examples for %d rows", s.Len(), len(f.rows))
	}
	trie := f.items.StandaloneTrie()
	for i := range s.Examples {
		ex, row := &s.Examples[i], f.rows[i]
		text, err := f.tok.Decode(ex.IDs)
		if err != nil {
			t.Fatal(err)
		}
		if want := tokenize.BOSToken + officialText(row.History, `"`+row.Target+`"`) + tokenize.EOSToken; text != want {
			t.Fatalf("example %d decodes to\n%q\nwant\n%q", i, text, want)
		}
		prefix := len(f.tok.EncodeSpecial(officialText(row.History, "")))
		if ex.Row != i || ex.LabelStart != prefix || ex.PathStart != prefix || s.MaxLen() < len(ex.IDs) {
			t.Fatalf("example %d: row %d, label start %d, path start %d, want %d", i, ex.Row, ex.LabelStart, ex.PathStart, prefix)
		}
		resp, _ := f.tok.Decode(ex.Targets())
		if resp != `"`+row.Target+`"`+tokenize.EOSToken {
			t.Errorf("example %d supervises %q", i, resp)
		}
		path := ex.Targets()
		if len(ex.Allowed) != len(path) || len(ex.TargetIdx) != len(path) {
			t.Fatalf("example %d: %d allowed sets, %d target indices for %d positions", i, len(ex.Allowed), len(ex.TargetIdx), len(path))
		}
		for j := range path {
			if want := trie.Allowed(path[:j]); !slices.Equal(ex.Allowed[j], want) {
				t.Fatalf("example %d position %d: allowed %v, trie.Allowed %v", i, j, ex.Allowed[j], want)
			}
			if ex.Allowed[j][ex.TargetIdx[j]] != path[j] {
				t.Fatalf("example %d position %d: target index %d does not point at %d", i, j, ex.TargetIdx[j], path[j])
			}
		}
		if last := ex.Allowed[len(path)-1]; !slices.Contains(last, f.tok.EOS()) {
			t.Errorf("example %d: EOS not allowed after the title: %v", i, last)
		}
	}
}

// TestBuildDuplicateTitles: a target whose title several items share (mini's "Carcassonne",
// items 2 and 5) is accepted under either id.
func TestBuildDuplicateTitles(t *testing.T) {
	f := loadOffice(t)
	mini := filepath.Join("..", "..", "..", "testdata", "tokenize", "mini")
	cat, err := tokenize.ReadCatalogue(filepath.Join(mini, "id2name4Rec.json"))
	if err != nil {
		t.Fatal(err)
	}
	items, err := tokenize.NewItemSet(f.tok, cat)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tokenize.ReadSplit(filepath.Join(mini, "train_10000.csv"), cat)
	if err != nil {
		t.Fatal(err)
	}
	rows = append(rows, tokenize.Row{TargetID: 2, Target: "Carcassonne"}, tokenize.Row{TargetID: 5, Target: "Carcassonne"})
	s, err := Build(f.tok, f.prompt, items, rows, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Examples[len(rows)-2], s.Examples[len(rows)-1]
	if !slices.Equal(a.IDs, b.IDs) || !slices.Equal(a.Targets(), items.Sequence("Carcassonne")) {
		t.Errorf("duplicate-title examples differ: %v / %v", a.Targets(), b.Targets())
	}
}

func TestBuildErrors(t *testing.T) {
	f := loadOffice(t)
	good := f.rows[0]
	cases := []struct {
		name string
		bad  tokenize.Row
		want []string
		is   error
	}{
		{"unknown title", tokenize.Row{History: good.History, TargetID: good.TargetID, Target: "No Such Product"}, []string{"not in the catalogue", `"No Such Product"`}, nil},
		{"id of another title", tokenize.Row{History: good.History, TargetID: f.rows[1].TargetID, Target: good.Target}, []string{"not in the catalogue"}, nil},
		{"title holding the separator", tokenize.Row{TargetID: 7, Target: "Pens\n### Response:\nPencils"}, []string{"disagree"}, tokenize.ErrStartMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items, rows := f.items, []tokenize.Row{good, good, c.bad}
			if c.is != nil { // the title must be in the catalogue to reach the start check
				cat := &tokenize.Catalogue{IDs: []int{6, 7}, Titles: map[int]string{6: "Carcassonne", 7: c.bad.Target}}
				var err error
				if items, err = tokenize.NewItemSet(f.tok, cat); err != nil {
					t.Fatal(err)
				}
				ok := tokenize.Row{History: []string{c.bad.Target}, TargetID: 6, Target: "Carcassonne"}
				rows = []tokenize.Row{ok, ok, c.bad}
			}
			_, err := Build(f.tok, f.prompt, items, rows, DefaultOptions())
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			for _, w := range append(c.want, "training row 2 (file line 4)") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := Build(f.tok, f.prompt, f.items, nil, DefaultOptions()); err == nil {
		t.Error("no rows: no error")
	}
}

// TestBuildOffTrie drives the trie walk with tries that do not hold the target's tokens (Build
// always uses the item set's own trie, which holds every catalogue title).
func TestBuildOffTrie(t *testing.T) {
	f := loadOffice(t)
	row := f.rows[0]
	seq := f.items.Sequence(row.Target)
	eos := f.tok.EOS()
	cases := []struct {
		name  string
		seqs  [][]int
		items [][]int
		want  string
	}{
		{"first token differs", [][]int{{seq[0] + 1, eos}}, [][]int{{row.TargetID}}, "leaves the item trie at its response token 0"},
		{"title cut short", [][]int{append(slices.Clone(seq[:len(seq)-2]), eos)}, [][]int{{row.TargetID}}, "leaves the item trie"},
		{"path of another item", [][]int{seq}, [][]int{{row.TargetID + 1}}, "not at item"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			trie, err := tokenize.NewTrie(c.seqs, c.items, eos)
			if err != nil {
				t.Fatal(err)
			}
			var ex Example
			err = buildExample(&ex, f.tok.NewEncoder(), f.prompt, f.items, trie, f.rows, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name      string
		opts      Options
		want      []string // substrings of the error; nil: valid
		wantMicro int
	}{
		{"defaults", DefaultOptions(), nil, 16},
		{"micro clamped to the group", Options{Batch: 32, NormGroup: 8, Micro: 40, Bucket: 32}, nil, 8},
		{"micro below the group", Options{Batch: 32, NormGroup: 8, Micro: 3, Bucket: 1}, nil, 3},
		{"batch not a multiple", Options{Batch: 100, NormGroup: 16, Micro: 4, Bucket: 32}, []string{"trainset.Options.Batch 100", "trainset.Options.NormGroup 16"}, 0},
		{"zero batch", Options{Batch: 0, NormGroup: 16, Micro: 4, Bucket: 32}, []string{"trainset.Options.Batch 0"}, 0},
		{"zero group", Options{Batch: 16, NormGroup: 0, Micro: 4, Bucket: 32}, []string{"trainset.Options.NormGroup 0"}, 0},
		{"zero micro", Options{Batch: 16, NormGroup: 16, Micro: 0, Bucket: 32}, []string{"trainset.Options.Micro 0"}, 0},
		{"zero bucket", Options{Batch: 16, NormGroup: 16, Micro: 1, Bucket: 0}, []string{"trainset.Options.Bucket 0"}, 0},
	}
	f := loadOffice(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.opts.Validate()
			_, buildErr := Build(f.tok, f.prompt, f.items, f.rows[:2], c.opts)
			if c.want == nil {
				if err != nil || buildErr != nil || got.Micro != c.wantMicro {
					t.Errorf("Validate = %+v, %v; Build: %v; want micro %d", got, err, buildErr, c.wantMicro)
				}
				return
			}
			var oe *opterr.Error
			if !errors.As(err, &oe) || !errors.As(buildErr, &oe) {
				t.Fatalf("Validate: %v; Build: %v", err, buildErr)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
