package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/tokenize"
)

// longTitle is longer than the official max_new_tokens of 128 once quoted and tokenised.
var longTitle = "Desk Organizer" + strings.Repeat(" red blue", 75)

// writeSmallDataset writes an Office-named dataset folder: four items (two share a title, so the
// trie holds three sequences; one title is longTitle) and a test split of three users whose rows
// hold 1, 2 and 0 ids missing from the catalogue.
func writeSmallDataset(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Office")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cat, _ := json.Marshal(map[string]string{"1": "Red Pen", "2": "Paper Clips", "3": longTitle, "4": "Red Pen"})
	split := "user_id,item_ids\n11,\"[1, 99, 2, 3]\"\n12,\"[3, 98, 97, 1, 2]\"\n13,\"[2, 1]\"\n"
	if err := os.WriteFile(filepath.Join(dir, "id2name4Rec.json"), cat, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test_3.csv"), []byte(split), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func smallOptions(t *testing.T, data, out string) Options {
	o := tinyOptions(t, out, 0)
	o.Data, o.Beams, o.Batch = data, 3, 2
	return o
}

// TestLongTitleCap: with the default max_new_tokens (the official 128) the beam of a title of
// more than 128 tokens ends unfinished, with no item, and takes a returned slot; without a cap
// the same user finds it.
func TestLongTitleCap(t *testing.T) {
	data := writeSmallDataset(t)
	tok, err := tokenize.Load(tinyOptions(t, "", 0).Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tok.Encode(tokenize.Quote(longTitle))); n <= DefaultMaxNewTokens {
		t.Fatalf("the long title has %d tokens, want more than %d", n, DefaultMaxNewTokens)
	}
	capped := smallOptions(t, data, filepath.Join(t.TempDir(), "capped"))
	capped.Limit = 1
	m, err := Run(context.Background(), capped)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := results.Read(capped.Out)
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if m.Config.MaxNewTokens != 128 || r.TargetItem != 3 || r.Rank != -1 || len(r.Predict) != 3 {
		t.Fatalf("capped: max_new_tokens %d, target %d rank %d, %d predictions; want 128, 3, -1, 3", m.Config.MaxNewTokens, r.TargetItem, r.Rank, len(r.Predict))
	}
	unfinished := 0
	for j, items := range r.PredictItems {
		if len(items) == 0 {
			unfinished++
			if p := r.Predict[j]; p == tokenize.Quote(longTitle) || !strings.HasPrefix(tokenize.Quote(longTitle), p) {
				t.Errorf("unfinished prediction %q is not a strict prefix of the long title", p)
			}
		}
	}
	if unfinished != 1 {
		t.Errorf("%d unfinished predictions, want the long title's one: %v", unfinished, r.PredictItems)
	}

	free := smallOptions(t, data, filepath.Join(t.TempDir(), "free"))
	free.Limit, free.MaxNewTokens = 1, NoMaxNewTokens
	m, err = Run(context.Background(), free)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, _ = results.Read(free.Out)
	if m.Config.MaxNewTokens != 0 || recs[0].Rank < 0 {
		t.Errorf("no cap: max_new_tokens %d, target rank %d; want 0 and found (%v)", m.Config.MaxNewTokens, recs[0].Rank, recs[0].PredictItems)
	}
}

// TestDroppedIDsReported: the ids missing from the catalogue are counted over the evaluated
// users, logged, written to metrics.json per shard, and summed by a merge.
func TestDroppedIDsReported(t *testing.T) {
	data := writeSmallDataset(t)
	root := t.TempDir()
	var dirs []string
	for i, want := range []int{1, 2} { // shard 0/2 has rows 0 and 2, shard 1/2 row 1
		o := smallOptions(t, data, filepath.Join(root, "shard", string(rune('0'+i))))
		o.Shard = Shard{i, 2}
		var logged []string
		o.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		data, _ := os.ReadFile(filepath.Join(o.Out, results.MetricsName))
		if err := json.Unmarshal(data, &m); err != nil || string(m["dropped_item_ids"]) != fmt.Sprint(want) {
			t.Errorf("shard %d: metrics.json dropped_item_ids %q (%v), want %d", i, m["dropped_item_ids"], err, want)
		}
		if note := fmt.Sprintf("%d item ids", want); len(logged) != 1 || !strings.Contains(logged[0], note) {
			t.Errorf("shard %d: logged %q, want a note of %q", i, logged, note)
		}
		dirs = append(dirs, o.Out)
	}
	merged, err := Merge(dirs, filepath.Join(root, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	if merged.DroppedIDs != 3 {
		t.Errorf("merged dropped_item_ids %d, want 3", merged.DroppedIDs)
	}
}

// TestBeamsBoundedByTrie: asking for more beams than the trie has distinct sequences is refused
// before any decoding, naming both numbers; exactly that many is accepted (TestLongTitleCap).
func TestBeamsBoundedByTrie(t *testing.T) {
	o := smallOptions(t, writeSmallDataset(t), t.TempDir())
	o.Beams = 4
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "evaluate.Options.Beams 4") || !strings.Contains(err.Error(), "3 distinct item sequences (4 items") {
		t.Errorf("4 beams over 3 sequences: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(o.Out, journalName)); !os.IsNotExist(statErr) {
		t.Errorf("a refused run left a journal: %v", statErr)
	}
}
