package evaluate

import (
	"context"
	"errors"
	"fmt"
	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/tokenize"
)

// The item trie of a dataset is the beam search's constraint.
var _ decode.Trie = (*tokenize.Trie)(nil)

// Shard selects the users of one shard: the selected rows i with i % Count == Index (strided,
// so every shard gets a similar mix of history lengths). The zero value is the whole split.
type Shard struct{ Index, Count int }

// ParseShard reads "i/n" (0 <= i < n).
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{i, n}, nil
}

func (s Shard) count() int { return max(s.Count, 1) }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.count()) }

// Options configure Run. Zero values take the defaults noted.
type Options struct {
	Model     string // checkpoint folder (HF layout)
	Adapter   string // PEFT adapter folder ("": the base model)
	Tokenizer string // tokenizer.json ("": Model/tokenizer.json)
	Data      string // dataset folder: id2name4Rec.json and the split files
	Dataset   string // prompt strings (tokenize.DatasetPrompt); "": from Data's base name
	Split     string // "test" (test_*.csv in Data), a file name in Data, or a path; "": test
	Limit     int    // first Limit rows of the split (0: all), before sharding
	Shard     Shard

	Beams int         // beams = returned sequences (0: DefaultBeams)
	Mode  decode.Mode // constraint: AfterSoftmax (official default) or BeforeSoftmax
	// MaxNewTokens is HF's max_new_tokens (0: DefaultMaxNewTokens, the official 128;
	// NoMaxNewTokens: no cap, the trie alone bounds every path).
	MaxNewTokens int
	Batch        int // users per decode.Search call (0: 8)

	KVCache bool // decode with the KV-cache scorer (false: the no-cache reference path)
	MaxRows int  // rows per ONNX Runtime call (ortrun.ScorerOptions.MaxRows; 0: its default)
	Runtime ortrun.ModelOptions

	Pruning            bool    // run the pruning analysis (decode.AnalysePruning)
	ExactLengthPenalty float64 // exact top-B ranking: 0 = plain log-probability (prunes), 1 = the beam search's sum/len (barely prunes)
	MaxFrontier        int     // cap on open prefixes per user and depth of the exact search (0: none)
	// ExactMemory bounds the memory of the exact search's scorer calls, in bytes (0:
	// DefaultExactMemory; NoExactMemory: none): each row (open prefix) holds a KV cache of the
	// prompt and vocabulary-wide logits, so the bound becomes a row count at the model's shape
	// and the shard's longest prompt (decode.PruneConfig.MaxRows). It never changes results; a
	// user that alone needs more rows stops the run with an error.
	ExactMemory int64

	OfficialMatch bool // headline metrics are the official string match (both are always written)

	Out   string // output folder
	Fresh bool   // discard a journal of an interrupted run instead of resuming it
	// Progress, when set, is called after every batch with the users done (resumed ones
	// included) and the shard's total.
	Progress func(done, total int)
	// Log receives one-line notes (resumed users, ...); nil: none.
	Log func(format string, args ...any)
}

// DefaultExactMemory is the default of Options.ExactMemory: 4 GiB of scorer rows (838 rows of
// 400-token sequences on the small preset, 32 at the Llama-3.2-1B shape).
const DefaultExactMemory = 4 << 30

// NoExactMemory in Options.ExactMemory leaves the exact search unbounded.
const NoExactMemory = -1

// DefaultBeams is the official evaluation's num_beams (= num_return_sequences).
const DefaultBeams = 10

// DefaultMaxNewTokens is the max_new_tokens of the official inference.py's generate call. Beams of
// titles of 128 tokens or more (quotes included) cannot end within it: HF finalises them
// unfinished, and they take a slot of the returned list without matching any target.
const DefaultMaxNewTokens = 128

// NoMaxNewTokens in Options.MaxNewTokens decodes without a cap.
const NoMaxNewTokens = -1

func (o *Options) defaults() {
	if o.Beams <= 0 {
		o.Beams = DefaultBeams
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = DefaultMaxNewTokens
	}
	if o.Batch <= 0 {
		o.Batch = 8
	}
	if o.Split == "" {
		o.Split = "test"
	}
	if o.Tokenizer == "" {
		o.Tokenizer = filepath.Join(o.Model, "tokenizer.json")
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
}

// SearchConfig is the beam search of these options: the official evaluation (10 beams, 10
// returned, length penalty 1, early_stopping False) with the chosen beams and constraint mode.
func (o Options) SearchConfig() decode.Config {
	o.defaults()
	c := decode.DefaultConfig()
	c.Beams, c.Return, c.Mode, c.MaxNewTokens = o.Beams, o.Beams, o.Mode, max(o.MaxNewTokens, 0)
	return c
}

// Data is a dataset prepared for evaluation: prompt strings, catalogue, items, selected rows.
type Data struct {
	Name        string
	Prompt      tokenize.Prompt
	Catalogue   *tokenize.Catalogue
	Items       *tokenize.ItemSet
	Index       *decode.Index
	Tok         *tokenize.Tokenizer
	SplitFile   string
	SplitSHA256 string // of the split file
	// Rows are the rows of this shard; RowIndex[i] is Rows[i]'s 0-based position in the split
	// file; Selected is the number of rows before sharding (after Limit).
	Rows     []tokenize.Row
	RowIndex []int
	Selected int
}

// loadData reads the tokenizer, catalogue and split of o and selects the shard's rows.
func loadData(o Options) (*Data, error) {
	o.defaults()
	if err := checkDataset(o); err != nil {
		return nil, err
	}
	sp, err := tokenize.LoadSplit(o.Data, o.Dataset, o.Split, o.Tokenizer)
	if err != nil {
		return nil, datasetError(err)
	}
	rows, splitPath := sp.Rows, sp.Path
	if o.Limit > 0 && o.Limit < len(rows) {
		rows = rows[:o.Limit]
	}
	d := &Data{Name: sp.Name, Prompt: sp.Prompt, Catalogue: sp.Catalogue, Items: sp.Items, Index: decode.NewIndex(sp.Items.Trie()), Tok: sp.Tok, SplitFile: splitPath, SplitSHA256: sp.SHA256, Selected: len(rows)}
	for i, r := range rows {
		if i%o.Shard.count() == o.Shard.Index {
			if _, ok := d.Index.Path(r.TargetID); !ok {
				return nil, fmt.Errorf("split %s: row %d (user_id %d): item_ids target %d has no path in the item trie", splitPath, i+2, r.UserID, r.TargetID)
			}
			d.Rows = append(d.Rows, r)
			d.RowIndex = append(d.RowIndex, i)
		}
	}
	if len(d.Rows) == 0 {
		return nil, fmt.Errorf("split %s: shard %s of %d rows has no users", splitPath, o.Shard, len(rows))
	}
	return d, nil
}

// checkDataset refuses a dataset name with no prompt strings, naming the option.
func checkDataset(o Options) error {
	if o.Dataset == "" {
		return nil
	}
	if _, err := tokenize.DatasetPrompt(o.Dataset); err != nil {
		return opterr.Wrap("evaluate.Options.Dataset", o.Dataset, err)
	}
	return nil
}

// datasetError names the option to set when the dataset cannot be told from the folder's name.
func datasetError(err error) error {
	if de := (*tokenize.DatasetError)(nil); errors.As(err, &de) {
		return opterr.Wrap("evaluate.Options.Dataset", nil, err)
	}
	return err
}

// CheckBeams refuses more beams than the trie has distinct item sequences: beam search cannot
// return more distinct items, and asking for more only grows the work and memory (HF would pad
// the list with filler sequences). catalogue names the catalogue file in the message.
func CheckBeams(beams int, ix *decode.Index, catalogue string, items int) error {
	if n := ix.Sequences(); beams > n {
		return fmt.Errorf("%d beams, but the catalogue %s holds %d distinct item sequences (%d items; duplicate titles share one), "+
			"so beam search cannot return more than %d: use %d beams or fewer", beams, catalogue, n, items, n, n)
	}
	return nil
}

// belongs checks that a journal record is one of the shard's users, as the split has it.
func (d *Data) belongs(r results.Record) error {
	i, ok := slices.BinarySearch(d.RowIndex, r.Row) // RowIndex increases
	if !ok {
		return fmt.Errorf("row %d is not a row of this shard", r.Row)
	}
	if row := d.Rows[i]; row.UserID != r.UserID || row.TargetID != r.TargetItem {
		return fmt.Errorf("row %d: user %d with target %d, but the split has user %d with target %d", r.Row, r.UserID, r.TargetItem, row.UserID, row.TargetID)
	}
	return nil
}

// batchDecoder decodes batches of users with one scorer.
type batchDecoder struct {
	Data   *Data
	Scorer decode.Scorer
	Search decode.Config
	// Prune, when not nil, runs decode.AnalysePruning instead of decode.Search.
	Prune *decode.PruneConfig
	// ScorerTime accumulates the time spent inside Scorer calls.
	ScorerTime time.Duration
	ctx        context.Context // nil: never cancelled
	budget     *exactBudget    // the exact search's memory bound, for its error message
}

// timedScorer times a scorer's calls and stops the search at the first call after ctx is
// cancelled (a batch's search takes many calls: an interrupt is answered within one).
type timedScorer struct {
	s   decode.Scorer
	d   *time.Duration
	ctx context.Context
}

func (t timedScorer) Start(p [][]int, c [][]int) ([]decode.Scores, error) {
	if err := t.cancelled(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	defer func() { *t.d += time.Since(t0) }()
	return t.s.Start(p, c)
}

func (t timedScorer) Step(p []int, tok []int, c [][]int) ([]decode.Scores, error) {
	if err := t.cancelled(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	defer func() { *t.d += time.Since(t0) }()
	return t.s.Step(p, tok, c)
}

func (t timedScorer) cancelled() error {
	if t.ctx == nil {
		return nil
	}
	return t.ctx.Err()
}

// Decode searches the rows' users at once and ranks each target (rowIndex gives their positions
// in the split file).
func (e *batchDecoder) Decode(rows []tokenize.Row, rowIndex []int) ([]results.Record, error) {
	res, cases, err := e.search(rows)
	if err != nil {
		return nil, err
	}
	out := make([]results.Record, len(rows))
	for i, r := range rows {
		rec := results.Record{
			Instruction: e.Data.Prompt.Instruction, Input: e.Data.Prompt.Input(r.History), Output: tokenize.Quote(r.Target),
			Row: rowIndex[i], UserID: r.UserID, TargetItem: r.TargetID,
		}
		if rec.Predict, rec.Scores, rec.PredictItems, err = e.predictions(res[i].Hyps); err != nil {
			return nil, fmt.Errorf("user %d: %w", r.UserID, err)
		}
		rec.Rank = decode.Rank(res[i].Hyps, r.TargetID)
		rec.OfficialRank = decode.RankOfTitles(rec.Predict, rec.Output)
		if cases != nil {
			c := cases[i]
			rec.Pruning = &results.PruneInfo{BeamRank: c.BeamRank, ExactRank: c.ExactRank, Pruned: c.Pruned, How: c.Trace.How.String(), Step: c.Trace.Step,
				Truncated: c.Truncated, LostHit: c.LostHit}
			if !math.IsNaN(c.TargetScore) {
				rec.Pruning.TargetScore = &c.TargetScore
			}
		}
		out[i] = rec
	}
	return out, nil
}

// search decodes the rows' histories at once: the beam search, or with Prune the pruning
// analysis (cases nil without it). Only the pruning analysis reads the rows' targets.
func (e *batchDecoder) search(rows []tokenize.Row) ([]decode.Result, []decode.PruneCase, error) {
	sc := timedScorer{e.Scorer, &e.ScorerTime, e.ctx}
	prompts := make([][]int, len(rows))
	for i, r := range rows {
		prompts[i] = e.Data.Tok.InferenceIDs(e.Data.Prompt, r.History)
	}
	if e.Prune == nil {
		res, err := decode.Search(sc, e.Data.Index.Trie, prompts, e.Search)
		return res, nil, err
	}
	targets := make([]int, len(rows))
	for i, r := range rows {
		targets[i] = r.TargetID
	}
	pc := *e.Prune
	pc.Beam = e.Search
	cases, res, err := decode.AnalysePruning(sc, e.Data.Index, prompts, targets, pc)
	if err != nil {
		return nil, nil, e.budget.explain(err, userIDs(rows))
	}
	return res, cases, nil
}

// predictions are one user's hypotheses as predictions.json holds them: the official decoded
// string, the score and the item ids of each (empty, never nil, for a hypothesis finalised
// without EOS by MaxNewTokens, which has none).
func (e *batchDecoder) predictions(hyps []decode.Hypothesis) (predict []string, scores []float64, items [][]int, err error) {
	predict, scores, items = []string{}, []float64{}, [][]int{}
	for _, h := range hyps {
		s, err := officialDecode(e.Data.Tok, h.Tokens)
		if err != nil {
			return nil, nil, nil, err
		}
		predict = append(predict, s)
		scores = append(scores, h.Score)
		items = append(items, append([]int{}, h.Items...))
	}
	return predict, scores, items, nil
}

func userIDs(rows []tokenize.Row) []int {
	ids := make([]int, len(rows))
	for i, r := range rows {
		ids[i] = r.UserID
	}
	return ids
}

// newScorer opens the runtime scorer of o (adapter included) over the checkpoint ck.
func newScorer(o Options, ck *hf.Checkpoint) (ortrun.Scorer, error) {
	so := ortrun.ScorerOptions{Model: o.Runtime, KVCache: o.KVCache, MaxRows: o.MaxRows}
	if o.Adapter != "" {
		var err error
		if so.Adapter, err = peft.ReadAdapter(o.Adapter, ck.Config); err != nil {
			return nil, err
		}
	}
	sc, err := ortrun.NewScorer(ck, so)
	if err != nil {
		kind := "no-cache"
		if o.KVCache {
			kind = "KV-cache"
		}
		return nil, fmt.Errorf("%s scorer for %s: %w", kind, o.Model, err)
	}
	return sc, nil
}

// pendingUsers lists the shard's users (indices into d.Rows) that the journal does not hold.
func pendingUsers(d *Data, done map[int]results.Record) []int {
	var pending []int
	for i, row := range d.RowIndex {
		if _, ok := done[row]; !ok {
			pending = append(pending, i)
		}
	}
	return pending
}

// decodePending decodes the pending users o.Batch at a time, appending each batch to the journal
// before it counts as done.
func decodePending(ctx context.Context, o Options, ev *batchDecoder, d *Data, pending []int, j *journal, done map[int]results.Record) error {
	ev.ctx = ctx
	for lo := 0; lo < len(pending); lo += o.Batch {
		idx := pending[lo:min(lo+o.Batch, len(pending))]
		rows := make([]tokenize.Row, len(idx))
		rowIndex := make([]int, len(idx))
		for k, i := range idx {
			rows[k], rowIndex[k] = d.Rows[i], d.RowIndex[i]
		}
		recs, err := ev.Decode(rows, rowIndex)
		if err != nil {
			return fmt.Errorf("users %d..%d of the shard: %w", lo, lo+len(idx)-1, err)
		}
		if err := j.Append(recs); err != nil {
			return err
		}
		for _, r := range recs {
			done[r.Row] = r
		}
		if o.Progress != nil {
			o.Progress(len(done), len(d.Rows))
		}
	}
	return nil
}

// openForSearch checks that the beam search can run on d's rows (the beams against the
// catalogue, the prompts against the model's vocabulary) and opens the model, before anything
// is built or written. longest is the longest prompt, in tokens.
func openForSearch(o Options, d *Data) (ck *hf.Checkpoint, longest int, err error) {
	if err := CheckBeams(o.Beams, d.Index, d.Catalogue.Path, len(d.Catalogue.IDs)); err != nil {
		return nil, 0, opterr.Wrap("evaluate.Options.Beams", o.Beams, err)
	}
	if ck, err = hf.Open(o.Model); err != nil {
		return nil, 0, err
	}
	if longest, err = checkPrompts(o, d, ck.Config.VocabSize); err != nil {
		return nil, 0, err
	}
	return ck, longest, nil
}

// Run evaluates the shard of o and writes Out/predictions.json and Out/metrics.json. Finished
// batches go to Out/journal.jsonl first, so an interrupted run resumes where it stopped (unless
// Fresh); the journal is removed once both files are written. Out is locked for the run (a
// second evaluation into it is refused). Cancelling ctx stops at the next scorer call with an
// error wrapping ctx.Err(); the journal keeps every finished batch.
func Run(ctx context.Context, o Options) (*results.Metrics, error) {
	o.defaults()
	if o.Out == "" {
		return nil, errors.New("no output folder")
	}
	t0 := time.Now()
	d, err := loadData(o)
	if err != nil {
		return nil, err
	}
	ck, longest, err := openForSearch(o, d)
	if err != nil {
		return nil, err
	}
	cfg, err := runConfig(o, d, ck)
	if err != nil {
		return nil, err
	}
	lock, err := claimOut(o, d)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if n := tokenize.DroppedIDs(d.Rows); n > 0 {
		o.Log("%d item ids of these %d users' rows are missing from the catalogue: dropped, as the official code drops them", n, len(d.Rows))
	}
	j, done, err := openJournal(filepath.Join(o.Out, journalName), cfg, o.Fresh, d.belongs)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	if len(done) > 0 {
		o.Log("resuming: %d of %d users already evaluated (journal %s)", len(done), len(d.Rows), j.path)
	}
	pending := pendingUsers(d, done)
	ev := &batchDecoder{Data: d, Search: o.SearchConfig()}
	if o.Pruning {
		ev.budget = newExactBudget(o.ExactMemory, ck.Config, longest+maxTitleTokens(d))
		pc := decode.PruneConfig{Beam: ev.Search, ExactLengthPenalty: o.ExactLengthPenalty, MaxFrontier: o.MaxFrontier, MaxRows: ev.budget.rows}
		ev.Prune = &pc
	}
	tSearch := time.Now()
	var loadTime time.Duration
	if len(pending) > 0 {
		sc, err := newScorer(o, ck)
		if err != nil {
			return nil, err
		}
		defer sc.Close()
		ev.Scorer = sc
		loadTime = time.Since(tSearch)
		tSearch = time.Now()
	}
	ort0 := ortrun.ORTTime()
	if o.Progress != nil {
		o.Progress(len(done), len(d.Rows))
	}
	if err := decodePending(ctx, o, ev, d, pending, j, done); err != nil {
		return nil, err
	}
	m := finalMetrics(o, d, cfg, done)
	m.Timing = results.Timing{
		Users: len(pending), WallS: time.Since(tSearch).Seconds(), ScorerS: ev.ScorerTime.Seconds(), ORTS: (ortrun.ORTTime() - ort0).Seconds(),
		LoadS: loadTime.Seconds(), TotalS: time.Since(t0).Seconds(),
	}
	m.Timing.Finish()
	if err := results.Write(o.Out, sortedRecords(done), m); err != nil {
		return nil, err
	}
	j.Close()
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return m, nil
}

// claimOut makes the output folder ready: it must not be, hold or lie inside an input, it is
// created and locked for this run, and leftovers of writes a kill interrupted are removed.
func claimOut(o Options, d *Data) (*atomicfs.DirLock, error) {
	inputs := []string{o.Model, o.Data, d.SplitFile, o.Tokenizer}
	if o.Adapter != "" {
		inputs = append(inputs, o.Adapter)
	}
	finished := false
	if _, err := os.Stat(filepath.Join(o.Out, results.MetricsName)); err == nil {
		_, err := os.Stat(filepath.Join(o.Out, journalName))
		finished = errors.Is(err, os.ErrNotExist)
	}
	lock, err := atomicfs.ClaimOutput("evaluate.Options.Out", o.Out, inputs, o.Log)
	if err == nil && finished {
		o.Log("%s holds finished results: they will be replaced", o.Out)
	}
	return lock, err
}

// finalMetrics computes the metrics of every user of the shard (journal and this run).
func finalMetrics(o Options, d *Data, cfg results.Config, done map[int]results.Record) *results.Metrics {
	m := compute(sortedRecords(done), cfg, o.OfficialMatch)
	m.Catalogue = catalogueInfo(d)
	m.DroppedIDs = tokenize.DroppedIDs(d.Rows)
	return m
}

// sortedRecords lists the records in split order.
func sortedRecords(done map[int]results.Record) []results.Record {
	recs := make([]results.Record, 0, len(done))
	for _, r := range done {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Row < recs[b].Row })
	return recs
}

func catalogueInfo(d *Data) results.CatalogueInfo {
	titles := d.Items.Titles()
	ci := results.CatalogueInfo{Items: len(d.Catalogue.IDs), Titles: len(titles)}
	for _, t := range titles {
		if cleanupChangedTitles([]string{t}) == 1 {
			ci.CleanupChanged++
			ci.CleanupChangedItems += len(d.Items.Items(t))
		}
	}
	return ci
}

// checkPrompts refuses, before any model is loaded, a tokenizer whose ids for the catalogue and
// the shard's prompts fall outside the model's vocabulary, and returns the longest prompt's
// length in tokens.
func checkPrompts(o Options, d *Data, vocab int) (longest int, err error) {
	prompts := func(yield func([]int) bool) {
		for _, r := range d.Rows {
			ids := d.Tok.InferenceIDs(d.Prompt, r.History)
			longest = max(longest, len(ids))
			if !yield(ids) {
				return
			}
		}
	}
	if err := tokenize.CheckVocab(o.Tokenizer, d.Tok, d.Items.Trie(), prompts, "the users' prompts", vocab); err != nil {
		return 0, opterr.Wrap("evaluate.Options.Tokenizer", o.Tokenizer, err)
	}
	return longest, nil
}

// maxTitleTokens is the longest item sequence of the trie (a title, its quotes and EOS).
func maxTitleTokens(d *Data) int {
	n := 0
	for _, t := range d.Items.Titles() {
		n = max(n, len(d.Items.Sequence(t)))
	}
	return n
}
