package evaluate

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/runtime/evaluate/results"
	"github.com/bearrec/bear/tokenize"
)

// checkAgainstRecords compares Recommend's lists with Run's predictions of the same users:
// the same item ids and bit-identical scores in the same order, the catalogue's title for
// every item hypothesis (predict is its quoted, cleaned-up form) and the decoded text of an
// unfinished one.
func checkAgainstRecords(t *testing.T, d *Data, what string, got [][]Prediction, recs []results.Record) {
	t.Helper()
	if len(got) != len(recs) {
		t.Fatalf("%s: %d lists for %d users", what, len(got), len(recs))
	}
	for i, rec := range recs {
		if len(got[i]) != len(rec.Predict) {
			t.Errorf("%s: user %d: %d predictions, Run wrote %d", what, rec.UserID, len(got[i]), len(rec.Predict))
			continue
		}
		for j, p := range got[i] {
			if !slices.Equal(p.ItemIDs, rec.PredictItems[j]) || p.ItemIDs == nil || p.Score != rec.Scores[j] {
				t.Errorf("%s: user %d rank %d: items %v score %v, Run %v %v", what, rec.UserID, j, p.ItemIDs, p.Score, rec.PredictItems[j], rec.Scores[j])
			}
			want := `"` + p.Title
			if len(p.ItemIDs) > 0 {
				want = cleanUpTokenizationSpaces(tokenize.Quote(p.Title))
				if p.Title != d.Catalogue.Titles[p.ItemIDs[0]] {
					t.Errorf("%s: user %d rank %d: title %q, the catalogue's %q", what, rec.UserID, j, p.Title, d.Catalogue.Titles[p.ItemIDs[0]])
				}
			}
			if want != rec.Predict[j] {
				t.Errorf("%s: user %d rank %d: title %q, Run's predict %q", what, rec.UserID, j, p.Title, rec.Predict[j])
			}
		}
	}
}

// evaluated runs o's evaluation and returns its data and the records Run wrote.
func evaluated(t *testing.T, o Options) (*Data, []results.Record) {
	t.Helper()
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	_, recs, err := results.Read(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := loadData(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, recs
}

// histories returns the rows' histories given as item ids and as titles.
func histories(rows []tokenize.Row) (byIDs, byTitles []History) {
	for _, r := range rows {
		byIDs = append(byIDs, History{ItemIDs: r.HistoryIDs})
		byTitles = append(byTitles, History{Titles: r.History})
	}
	return byIDs, byTitles
}

// TestRecommendMatchesRun: the histories of 12 Office test users, given as item ids and as
// titles, get exactly Run's predictions; progress counts the histories.
func TestRecommendMatchesRun(t *testing.T) {
	o := tinyOptions(t, filepath.Join(t.TempDir(), "eval"), 12)
	d, recs := evaluated(t, o)
	byIDs, byTitles := histories(d.Rows)
	for _, c := range []struct {
		what string
		hs   []History
	}{{"item ids", byIDs}, {"titles", byTitles}} {
		var calls [][2]int
		o.Progress = func(done, total int) { calls = append(calls, [2]int{done, total}) }
		got, err := Recommend(context.Background(), o, c.hs)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstRecords(t, d, c.what, got, recs)
		if want := [][2]int{{0, 12}, {4, 12}, {8, 12}, {12, 12}}; !slices.Equal(calls, want) {
			t.Errorf("%s: progress %v, want %v", c.what, calls, want)
		}
	}
}

// TestRecommendSmallCatalogue: a beam cut by MaxNewTokens has no item ids and its decoded text
// as title, a duplicated title lists both ids, and both agree with Run.
func TestRecommendSmallCatalogue(t *testing.T) {
	data := writeSmallDataset(t)
	o := smallOptions(t, data, filepath.Join(t.TempDir(), "eval"))
	d, recs := evaluated(t, o)
	byIDs, _ := histories(d.Rows)
	got, err := Recommend(context.Background(), o, byIDs)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstRecords(t, d, "small catalogue", got, recs)
	var unfinished, duplicated int
	for _, p := range got[0] {
		switch {
		case len(p.ItemIDs) == 0:
			unfinished++
			if !strings.HasPrefix(longTitle, p.Title) || p.Title == longTitle {
				t.Errorf("unfinished title %q is not a strict prefix of the long title", p.Title)
			}
		case p.Title == "Red Pen":
			duplicated++
			if !slices.Equal(p.ItemIDs, []int{1, 4}) {
				t.Errorf("Red Pen: item ids %v, want [1 4]", p.ItemIDs)
			}
		}
	}
	if unfinished != 1 || duplicated != 1 {
		t.Errorf("%d unfinished and %d Red Pen predictions, want 1 and 1: %+v", unfinished, duplicated, got[0])
	}
}

// TestRecommendRefused: histories that cannot be used are refused before the model is opened
// (the model folder does not exist), with the index of the first bad one; so are Pruning, no
// histories, too many beams and an unknown dataset.
func TestRecommendRefused(t *testing.T) {
	o := tinyOptions(t, "", 0)
	o.Model = filepath.Join(t.TempDir(), "no-model")
	d, err := loadCatalogue(o)
	if err != nil {
		t.Fatal(err)
	}
	var changed string // a title that transformers' clean-up changes
	for _, title := range d.Items.Titles() {
		if cleanupChangedTitles([]string{title}) == 1 {
			changed = title
			break
		}
	}
	cleaned := decode0(cleanUpTokenizationSpaces(tokenize.Quote(changed)))
	first := d.Catalogue.IDs[0]
	firstTitle := d.Catalogue.Titles[first]
	good := History{ItemIDs: []int{first}}
	for _, c := range []struct {
		name string
		bad  History
		want string
	}{
		{"unknown id", History{ItemIDs: []int{first, 99999999}}, "item id 99999999 (item 2 of 2) is not in the catalogue"},
		{"unknown title", History{Titles: []string{"No Such Thing"}}, `title "No Such Thing" (item 1 of 1) is not in the catalogue`},
		{"cleaned-up title", History{Titles: []string{cleaned}}, "as decoded predictions show it"},
		{"title in other case", History{Titles: []string{strings.ToUpper(firstTitle)}}, "differs only in case, spaces or quotes"},
		{"quoted title", History{Titles: []string{tokenize.Quote(firstTitle)}}, "differs only in case, spaces or quotes"},
		{"both", History{ItemIDs: []int{first}, Titles: []string{firstTitle}}, "both ItemIDs and Titles"},
		{"neither", History{}, "empty history"},
		{"empty", History{ItemIDs: []int{}}, "empty history"},
	} {
		_, err := Recommend(context.Background(), o, []History{good, good, c.bad, good})
		var he *HistoryError
		if !errors.As(err, &he) || he.Index != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a HistoryError of index 2 containing %q", c.name, err, c.want)
		}
	}
	pruning := o
	pruning.Pruning = true
	small := tinyOptions(t, "", 0)
	small.Data, small.Beams = writeSmallDataset(t), 4
	garden := o
	garden.Dataset = "Garden"
	for _, c := range []struct {
		name string
		o    Options
		hs   []History
		want string
	}{
		{"pruning", pruning, []History{good}, "evaluate.Options.Pruning true"},
		{"no histories", o, nil, "no histories"},
		{"beams", small, []History{{ItemIDs: []int{1}}}, "evaluate.Options.Beams 4"},
		{"dataset", garden, []History{good}, `evaluate.Options.Dataset Garden: no prompt for dataset "Garden"`},
	} {
		if _, err := Recommend(context.Background(), c.o, c.hs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// decode0 strips the quotes the way the official script does.
func decode0(s string) string { return s[1 : len(s)-1] }

// TestRecommendCancelled: a cancelled context stops the search with an error wrapping it.
func TestRecommendCancelled(t *testing.T) {
	o := tinyOptions(t, "", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Recommend(ctx, o, []History{{ItemIDs: []int{1, 2}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
