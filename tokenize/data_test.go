package tokenize

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var mini = filepath.Join("..", "testdata", "tokenize", "mini")

func readMini(t *testing.T) *Catalogue {
	t.Helper()
	cat, err := ReadCatalogue(filepath.Join(mini, "id2name4Rec.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestReadSplit(t *testing.T) {
	cat := readMini(t)
	if !slices.Equal(cat.IDs, []int{1, 2, 3, 4, 5, 7, 8}) || cat.Titles[4] != `Melissa & Doug 12" x 18" Easel` {
		t.Fatalf("catalogue %v %q", cat.IDs, cat.Titles[4])
	}
	train, err := ReadSplit(filepath.Join(mini, "train_10000.csv"), cat)
	if err != nil {
		t.Fatal(err)
	}
	test, err := ReadSplit(filepath.Join(mini, "test_5000.csv"), cat)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		row     Row
		user    int
		history []int
		target  int
	}{
		{train[0], 804, []int{1, 2}, 3},
		{train[1], 691, []int{3, 4}, 7}, // 99 is not in the catalogue: dropped
		{train[2], 12, []int{2, 3, 4, 5, 7, 8, 1, 2, 3, 4}, 5},
		{test[0], 351, []int{8, 2}, 5},
		{test[1], 352, []int{7}, 1},
	}
	for i, c := range cases {
		if c.row.UserID != c.user || !slices.Equal(c.row.HistoryIDs, c.history) || c.row.TargetID != c.target {
			t.Errorf("row %d: %+v", i, c.row)
		}
		if c.row.Target != cat.Titles[c.target] || len(c.row.History) != len(c.history) || (len(c.history) > 0 && c.row.History[0] != cat.Titles[c.history[0]]) {
			t.Errorf("row %d titles: %+v", i, c.row)
		}
	}
	if train[1].DroppedIDs != 1 || train[0].DroppedIDs != 0 || DroppedIDs(train) != 1 {
		t.Errorf("dropped ids: row 1 %d, row 0 %d, split %d; want 1, 0, 1", train[1].DroppedIDs, train[0].DroppedIDs, DroppedIDs(train))
	}
	if test[0].Timestamp != 1400112000 {
		t.Errorf("timestamp %d", test[0].Timestamp)
	}
}

func TestOpenDataset(t *testing.T) {
	d, err := OpenDataset(mini, "Office")
	if err != nil {
		t.Fatal(err)
	}
	_, train, err := d.ReadSplit("train")
	if err != nil {
		t.Fatal(err)
	}
	_, test, err := d.ReadSplit("test")
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != 3 || len(test) != 2 || len(d.Catalogue.IDs) != 7 || d.Prompt != datasetPrompts["Office"] {
		t.Errorf("dataset: %d train, %d test, %d items, %+v", len(train), len(test), len(d.Catalogue.IDs), d.Prompt)
	}
	if _, _, err := d.ReadSplit("valid"); err == nil || !strings.Contains(err.Error(), "valid") {
		t.Errorf("missing split: %v", err)
	}
	if _, err := OpenDataset(mini, "Unknown"); err == nil {
		t.Error("unknown dataset accepted")
	}
	if _, err := OpenDataset(t.TempDir(), "Toy"); err == nil {
		t.Error("folder without a catalogue accepted")
	}
	var de *DatasetError
	if _, err := OpenDataset(mini, ""); !errors.As(err, &de) || de.Folder != "mini" || !strings.Contains(err.Error(), "name the dataset") {
		t.Errorf("dataset name not inferable from %q: %v", mini, err)
	}
}

func TestPrompt(t *testing.T) {
	p, err := DatasetPrompt("Toy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DatasetPrompt("Nope"); err == nil {
		t.Error("unknown dataset: no error")
	}
	if b, _ := DatasetPrompt("Amazon_Books"); b.Instruction != datasetPrompts["Book"].Instruction {
		t.Error("Amazon_Books alias")
	}
	for _, name := range datasets() {
		p, _ := DatasetPrompt(name)
		if !strings.HasSuffix(p.HistoryPrefix, "before: ") || !strings.HasSuffix(p.Instruction, "to the user.") {
			t.Errorf("%s: %+v", name, p)
		}
	}
	hist := []string{"A", `B "b"`}
	wantTrain := "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n" +
		"### Instruction:\nGiven a list of toys the user has played before, please recommend a new toy that the user likes to the user.\n\n" +
		"### Input:\nThe user has played the following toys before: \"A\", \"B \"b\"\"\n \n\n" +
		"### Response:\n\"C\""
	if got := p.Train(hist, "C"); got != wantTrain {
		t.Errorf("Train:\n%q\nwant\n%q", got, wantTrain)
	}
	wantInfer := strings.Replace(strings.TrimSuffix(wantTrain, `"C"`), "request. ", "request.  ", 1)
	if got := p.Inference(hist); got != wantInfer {
		t.Errorf("Inference:\n%q\nwant\n%q", got, wantInfer)
	}
	if got := p.TrainPrefix(hist); got != strings.TrimSuffix(wantTrain, `"C"`) {
		t.Errorf("TrainPrefix: %q", got)
	}
	custom := Prompt{Instruction: "I", HistoryPrefix: "H: "}
	if got := custom.Input(nil); got != "H: \n " {
		t.Errorf("empty history input %q", got)
	}
}

func TestTrie(t *testing.T) {
	const eos = 9
	seqs := [][]int{{5, 1, eos}, {5, 2, eos}, {3, eos}, {5, 1, 7, eos}}
	items := [][]int{{10}, {11, 12}, {13}, {14}}
	tr, err := NewTrie(seqs, items, eos)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		prefix, allowed []int
	}{
		{nil, []int{3, 5}},
		{[]int{5}, []int{1, 2}},
		{[]int{5, 1}, []int{7, eos}},
		{[]int{5, 1, eos}, []int{eos}}, // complete: nothing allowed, so EOS
		{[]int{4}, []int{eos}},         // outside the trie
	}
	for _, c := range cases {
		if got := tr.Allowed(c.prefix); !slices.Equal(got, c.allowed) {
			t.Errorf("Allowed(%v) = %v, want %v", c.prefix, got, c.allowed)
		}
	}
	if got := tr.Items([]int{5, 2}); !slices.Equal(got, []int{11, 12}) {
		t.Errorf("Items without EOS = %v", got)
	}
	if got := tr.Items([]int{5, 1, 7, eos}); !slices.Equal(got, []int{14}) {
		t.Errorf("Items = %v", got)
	}
	if got := tr.Items([]int{5}); got != nil {
		t.Errorf("Items of a prefix = %v", got)
	}
	along := tr.AllowedAlong([]int{5, 1, eos})
	if len(along) != 3 || !slices.Equal(along[0], []int{3, 5}) || !slices.Equal(along[1], []int{1, 2}) || !slices.Equal(along[2], []int{7, eos}) {
		t.Errorf("AllowedAlong = %v", along)
	}
	n, ok := tr.Walk([]int{5, 1})
	if !ok || !slices.Equal(tr.Children(n), []int{7, eos}) {
		t.Errorf("Walk: %d %v", n, ok)
	}
	if _, err := NewTrie(seqs, items[:1], eos); err == nil {
		t.Error("NewTrie with mismatched lengths: no error")
	}
}

func TestItemSet(t *testing.T) {
	tok := llama3(t)
	cat := readMini(t)
	s, err := NewItemSet(tok, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Titles()) != 6 || !slices.Equal(s.Items("Carcassonne"), []int{2, 5}) {
		t.Fatalf("titles %q, items %v", s.Titles(), s.Items("Carcassonne"))
	}
	if d := s.InContextDiffs(); len(d) != 0 {
		t.Errorf("in-context diffs: %+v", d)
	}
	tr := s.Trie()
	for _, title := range s.Titles() {
		seq := s.Sequence(title)
		if !slices.Equal(seq[:len(seq)-1], tok.Encode(Quote(title))) || seq[len(seq)-1] != 128001 {
			t.Errorf("%q: sequence %v", title, seq)
		}
		if got := tr.Items(seq); !slices.Equal(got, s.Items(title)) {
			t.Errorf("%q: trie items %v, want %v", title, got, s.Items(title))
		}
		for i := range seq {
			if !slices.Contains(tr.Allowed(seq[:i]), seq[i]) {
				t.Errorf("%q: token %d not allowed after %v", title, seq[i], seq[:i])
			}
		}
		if got := tr.Allowed(seq); !slices.Equal(got, []int{128001}) {
			t.Errorf("%q: after EOS %v", title, got)
		}
	}
	// The first level is cached: the same slice every time, sorted.
	a, b := tr.Allowed(nil), tr.Allowed([]int{})
	if &a[0] != &b[0] || !slices.IsSorted(a) {
		t.Error("root allowed set is not cached or not sorted")
	}
	if s.StandaloneTrie().Len() != tr.Len() {
		t.Error("standalone trie differs although no title differs")
	}
}

func BenchmarkTrieAllowed(b *testing.B) {
	tok := llama3(b)
	cat := &Catalogue{Titles: map[int]string{}}
	for i, s := range benchTexts(b, "title") {
		cat.IDs = append(cat.IDs, i)
		cat.Titles[i] = strings.Trim(s, `"`)
	}
	s, err := NewItemSet(tok, cat)
	if err != nil {
		b.Fatal(err)
	}
	tr := s.Trie()
	var seqs [][]int
	for _, t := range s.Titles() {
		seqs = append(seqs, s.Sequence(t))
	}
	b.ResetTimer()
	steps := 0
	for i := 0; i < b.N; i++ {
		seq := seqs[i%len(seqs)]
		node := tr.Root()
		for _, tok := range seq {
			_ = tr.Children(node)
			node, _ = tr.Next(node, tok)
			steps++
		}
	}
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
}
