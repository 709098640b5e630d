package evaluate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/tokenize"
)

// History is one user's history, oldest first: item ids of the catalogue, or titles exactly as
// the catalogue spells them (the prompt shows titles, so ids that share a title give the same
// prompt). Exactly one of the two is set, and it is not empty. Its latest tokenize.MaxHistory
// items go into the prompt, as the rows of the split files hold them.
type History struct {
	ItemIDs []int
	Titles  []string
}

// Prediction is one hypothesis of the beam search. A hypothesis that ends on an item of the
// trie has the catalogue's title and every item id that shares it (increasing: several for a
// duplicated title, which has one trie path). A beam that MaxNewTokens finalised before its
// title ended has no item ids, and its Title is the text decoded so far (as predictions.json's
// predict shows it, without the opening quote).
type Prediction struct {
	Title   string
	ItemIDs []int
	Score   float64 // HF's sequences_scores, as predictions.json's scores
}

// HistoryError says that histories[Index] of Recommend cannot be decoded, and why.
type HistoryError struct {
	Index int
	Err   error
}

func (e *HistoryError) Error() string { return fmt.Sprintf("history %d: %v", e.Index, e.Err) }

func (e *HistoryError) Unwrap() error { return e.Err }

// Recommend decodes histories with Run's prompt, scorer, batching and beam search and returns,
// for each history in order, its Options.Beams hypotheses best first: for the history of a
// split row, exactly the predictions Run writes for that row (with the same Batch and the same
// neighbours in the batch, the scores are bit-identical).
//
// It reads the fields of Options that Run reads for the search (Model, Adapter, Tokenizer,
// Data, Dataset, Beams, Mode, MaxNewTokens, Batch, KVCache, MaxRows, Runtime, Progress with
// the histories done and their number, Log); Data needs the catalogue only, no split. Split,
// Limit, Shard, Out, Fresh, OfficialMatch and the exact search's fields are ignored; Pruning is
// refused (there are no targets). Every history is checked against the catalogue before the
// model is opened (a *HistoryError for the first that cannot be used). Cancelling ctx stops at
// the next scorer call with an error wrapping ctx.Err().
func Recommend(ctx context.Context, o Options, histories []History) ([][]Prediction, error) {
	o.defaults()
	if o.Pruning {
		return nil, opterr.New("evaluate.Options.Pruning", true, "Recommend has no targets to analyse")
	}
	if len(histories) == 0 {
		return nil, errors.New("recommend: no histories")
	}
	d, err := loadCatalogue(o)
	if err != nil {
		return nil, err
	}
	if d.Rows, err = historyRows(d, histories); err != nil {
		return nil, err
	}
	ck, _, err := openForSearch(o, d)
	if err != nil {
		return nil, err
	}
	sc, err := newScorer(o, ck)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	ev := &batchDecoder{Data: d, Scorer: sc, Search: o.SearchConfig(), ctx: ctx}
	out := make([][]Prediction, 0, len(d.Rows))
	if o.Progress != nil {
		o.Progress(0, len(d.Rows))
	}
	for lo := 0; lo < len(d.Rows); lo += o.Batch {
		rows := d.Rows[lo:min(lo+o.Batch, len(d.Rows))]
		res, _, err := ev.search(rows)
		if err != nil {
			return nil, fmt.Errorf("histories %d..%d: %w", lo, lo+len(rows)-1, err)
		}
		for i := range rows {
			preds, err := ev.recommendations(res[i].Hyps)
			if err != nil {
				return nil, fmt.Errorf("history %d: %w", lo+i, err)
			}
			out = append(out, preds)
		}
		if o.Progress != nil {
			o.Progress(len(out), len(d.Rows))
		}
	}
	return out, nil
}

// recommendations turns one history's hypotheses into Predictions through predictions, the
// strings, scores and items Run writes.
func (e *batchDecoder) recommendations(hyps []decode.Hypothesis) ([]Prediction, error) {
	predict, scores, items, err := e.predictions(hyps)
	if err != nil {
		return nil, err
	}
	out := make([]Prediction, len(hyps))
	for j := range hyps {
		p := Prediction{ItemIDs: items[j], Score: scores[j], Title: strings.TrimPrefix(predict[j], `"`)}
		if len(p.ItemIDs) > 0 {
			p.Title = e.Data.Catalogue.Titles[p.ItemIDs[0]] // the ids of a trie node share their title
		}
		out[j] = p
	}
	return out, nil
}

// loadCatalogue reads what Recommend needs of o's dataset folder: the prompt strings, the
// catalogue, the tokenizer and the item trie (Data without rows; no split is read).
func loadCatalogue(o Options) (*Data, error) {
	if err := checkDataset(o); err != nil {
		return nil, err
	}
	ds, err := tokenize.OpenDataset(o.Data, o.Dataset)
	if err != nil {
		return nil, datasetError(err)
	}
	tok, err := tokenize.Load(o.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	items, err := tokenize.NewItemSet(tok, ds.Catalogue)
	if err != nil {
		return nil, err
	}
	return &Data{Name: ds.Name, Prompt: ds.Prompt, Catalogue: ds.Catalogue, Items: items, Index: decode.NewIndex(items.Trie()), Tok: tok}, nil
}

// historyRows checks every history against the catalogue and turns it into a row without a
// target.
func historyRows(d *Data, histories []History) ([]tokenize.Row, error) {
	hints := &titleHints{d: d}
	rows := make([]tokenize.Row, len(histories))
	for i, h := range histories {
		r, err := historyRow(d, h, hints)
		if err != nil {
			return nil, &HistoryError{Index: i, Err: err}
		}
		rows[i] = r
	}
	return rows, nil
}

func historyRow(d *Data, h History, hints *titleHints) (tokenize.Row, error) {
	cat := d.Catalogue
	var r tokenize.Row
	switch {
	case h.ItemIDs != nil && h.Titles != nil:
		return r, errors.New("both ItemIDs and Titles are set: give one of them")
	case len(h.ItemIDs) == 0 && len(h.Titles) == 0:
		return r, errors.New("empty history: give at least one item")
	}
	for j, id := range h.ItemIDs {
		title, ok := cat.Titles[id]
		if !ok {
			return r, fmt.Errorf("item id %d (item %d of %d) is not in the catalogue %s", id, j+1, len(h.ItemIDs), cat.Path)
		}
		r.HistoryIDs = append(r.HistoryIDs, id)
		r.History = append(r.History, title)
	}
	for j, title := range h.Titles {
		ids := d.Items.Items(title)
		if ids == nil {
			return r, fmt.Errorf("title %q (item %d of %d) is not in the catalogue %s%s", title, j+1, len(h.Titles), cat.Path, hints.hint(title))
		}
		r.HistoryIDs = append(r.HistoryIDs, ids[0])
		r.History = append(r.History, title)
	}
	if n := len(r.History); n > tokenize.MaxHistory { // the latest items, as the split files hold them
		r.History, r.HistoryIDs = r.History[n-tokenize.MaxHistory:], r.HistoryIDs[n-tokenize.MaxHistory:]
	}
	return r, nil
}

// titleHints says which catalogue title a title that is not in the catalogue probably means:
// one that transformers' decode clean-up turns into it (predictions.json's predict shows the
// cleaned-up form), or one that differs only in case, spaces or surrounding quotes. The
// catalogue's titles are used verbatim (no clean-up applies to them), so a title must be given
// exactly as the catalogue spells it.
type titleHints struct {
	d       *Data
	cleaned map[string][]string // cleaned-up title -> catalogue titles
	loose   map[string][]string // looseKey -> catalogue titles
}

func looseKey(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) {
		s = s[1 : len(s)-1]
	}
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

func (h *titleHints) hint(title string) string {
	if h.cleaned == nil {
		h.cleaned, h.loose = map[string][]string{}, map[string][]string{}
		for _, t := range h.d.Items.Titles() {
			c := decode.OfficialTitle(cleanUpTokenizationSpaces(tokenize.Quote(t)))
			if c != t {
				h.cleaned[c] = append(h.cleaned[c], t)
			}
			k := looseKey(t)
			h.loose[k] = append(h.loose[k], t)
		}
	}
	name := func(ts []string) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			parts[i] = fmt.Sprintf("%q (item ids %v)", t, h.d.Items.Items(t))
		}
		return strings.Join(parts, ", ")
	}
	if ts := h.cleaned[title]; ts != nil {
		return fmt.Sprintf("; it is the catalogue title %s as decoded predictions show it (predictions.json's predict), after transformers' decode clean-up: give the catalogue's spelling", name(ts))
	}
	if ts := h.loose[looseKey(title)]; ts != nil {
		return fmt.Sprintf("; the catalogue has %s, which differs only in case, spaces or quotes: titles must match exactly", name(ts))
	}
	return ""
}
