package trainset

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/tokenize"
)

// The Office strings of ../shared/prompts.md, written here rather than taken from
// tokenize.DatasetPrompt, so that the examples are checked against the specification.
const (
	officeInstruction = "Given a list of office products the user has used before, please recommend a new office product that the user likes to the user."
	officeHistory     = "The user has used the following office products before: "
)

// officialText is the training template of prompts.md (one space after "request.").
func officialText(history []string, output string) string {
	quoted := make([]string, len(history))
	for i, h := range history {
		quoted[i] = `"` + h + `"`
	}
	return "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n" +
		"### Instruction:\n" + officeInstruction + "\n\n" +
		"### Input:\n" + officeHistory + strings.Join(quoted, ", ") + "\n \n\n" +
		"### Response:\n" + output
}

// officeDir holds the committed Office data: the whole catalogue, the whole training split and
// 60 test rows.
var officeDir = filepath.Join("..", "..", "..", "testdata", "office")

// fixture is the Office catalogue with rows of one split; the tests use the 60 test rows as
// training rows (the files share one format), which keeps them short.
type fixture struct {
	tok    *tokenize.Tokenizer
	prompt tokenize.Prompt
	cat    *tokenize.Catalogue
	items  *tokenize.ItemSet
	rows   []tokenize.Row
}

var (
	officeOnce sync.Once
	office     fixture
	officeErr  error
)

func loadOffice(t testing.TB) *fixture {
	t.Helper()
	path := testdeps.Tokenizer(t)
	officeOnce.Do(func() {
		officeErr = office.load(path, filepath.Join("..", "..", "..", "testdata", "office"), "test_5000.csv")
	})
	if officeErr != nil {
		t.Fatal(officeErr)
	}
	return &office
}

func (f *fixture) load(tokPath, dir, split string) error {
	var err error
	if f.tok, err = tokenize.Load(tokPath); err != nil {
		return err
	}
	if f.prompt, err = tokenize.DatasetPrompt("Office"); err != nil {
		return err
	}
	if f.cat, err = tokenize.ReadCatalogue(filepath.Join(dir, "id2name4Rec.json")); err != nil {
		return err
	}
	if f.items, err = tokenize.NewItemSet(f.tok, f.cat); err != nil {
		return err
	}
	f.rows, err = tokenize.ReadSplit(filepath.Join(dir, split), f.cat)
	return err
}

// build is Build on the fixture's rows.
func (f *fixture) build(t testing.TB, rows []tokenize.Row, opts Options) *Set {
	t.Helper()
	s, err := Build(f.tok, f.prompt, f.items, rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// benchRows returns the 10 000 rows of Office's training split (testdata/office), or, where
// that file is absent, the 60 sample rows repeated to 10 000.
func benchRows(b *testing.B) (*fixture, []tokenize.Row) {
	f := loadOffice(b)
	if _, err := os.Stat(filepath.Join(officeDir, "train_10000.csv")); err == nil {
		train := &fixture{}
		if err := train.load(testdeps.Tokenizer(b), officeDir, "train_10000.csv"); err != nil {
			b.Fatal(err)
		}
		return train, train.rows
	}
	rows := make([]tokenize.Row, 10000)
	for i := range rows {
		rows[i] = f.rows[i%len(f.rows)]
	}
	return f, rows
}
