package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/runtime/evaluate"
)

func init() {
	register(&command{name: "recommend", summary: "top items for given histories (JSON lines, or --history titles) with bear eval's beam search", run: func(args []string) error {
		return recommendMain(args, os.Stdout, os.Stderr)
	}, options: joinOptions(recommendOptions, ortOptions)})
}

// recommendOptions maps the evaluate.Options fields that evaluate.Recommend reads to the flags
// of bear recommend (see optionflags.go).
var recommendOptions = map[string]string{
	"evaluate.Options.Model": "--model", "evaluate.Options.Adapter": "--adapter", "evaluate.Options.Tokenizer": "--tokenizer",
	"evaluate.Options.Data": "--data", "evaluate.Options.Dataset": "--dataset", "evaluate.Options.Beams": "--beams",
	"evaluate.Options.Mode": "--constrain", "evaluate.Options.MaxNewTokens": "--max-new-tokens", "evaluate.Options.Batch": "--batch",
	"evaluate.Options.KVCache": "--no-kv-cache", "evaluate.Options.MaxRows": "--max-rows",
}

const recommendUsage = `--model DIR [--adapter DIR] --data DIR --input FILE --out FILE [--top K] [flags]
       bear recommend --model DIR [--adapter DIR] --data DIR --history TITLE [--history TITLE ...] [flags]

Recommends items for given histories with bear eval's prompt and trie-constrained beam search,
with its defaults and flags (10 beams, 10 returned; --constrain from the adapter's
bear_training.json; --max-new-tokens 128; KV cache). --data gives the catalogue
(id2name4Rec.json) and, with --dataset, the prompt strings; no split is read.

--input holds JSON lines, one history per line, oldest item first:
  {"user": ANY, "item_ids": [ID, ...]}    or    {"user": ANY, "titles": ["TITLE", ...]}
"user" (required, any JSON value) is echoed back; titles must be spelled exactly as in
id2name4Rec.json; the latest 10 items go into the prompt, as in the split files. Blank lines are skipped (line numbers
count them). Every line is checked before the model is loaded: invalid JSON, unknown or repeated
keys, both or neither of item_ids and titles, an empty history, or an id or title missing from
the catalogue is refused naming the line.

--out gets one JSON line per history, in input order:
  {"user": ANY, "items": [{"rank": 1, "item_id": ID, "item_ids": [ID, ...], "title": "...", "score": S}, ...]}
item_ids lists every id of the title (several where the catalogue gives one title to several
items: they share one trie path, and item_id is the smallest). A beam that --max-new-tokens cut
before its title ended has "item_id": null, "item_ids": [] and the text decoded so far as its
title (bear eval counts it the same way: a returned slot that matches no item). score is
predictions.json's. --out is written whole through a temporary file and renamed into place:
nothing is written on an error or an interrupt; an existing file is replaced only with --force,
and an input never.

--history (repeatable, oldest first) decodes one history of titles and prints a table (rank, item
ids, score, title) instead. --top K keeps the first K of the --beams returned sequences (default:
all of them); --beams does not follow --top, so the first K are exactly bear eval's first K.

flags:`

// titleList is a repeatable string flag.
type titleList []string

func (l *titleList) String() string { return strings.Join(*l, ", ") }

func (l *titleList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// repeatable and values make it a list in run files (history: [TITLE, ...]).
func (l *titleList) repeatable()      {}
func (l *titleList) values() []string { return *l }

// recommendFlags are the flags of bear recommend.
type recommendFlags struct {
	model, adapter, tokenizer, data, dataset, constrain, input, out *string
	top, beams, maxNew, batch, maxRows                              *int
	noKV, force, noProgress                                         *bool
	history                                                         titleList
	ort                                                             ortFlags
}

func defineRecommendFlags(fs *flag.FlagSet) *recommendFlags {
	f := &recommendFlags{
		model:      fs.String("model", "", "checkpoint folder in the HF layout (required)"),
		adapter:    fs.String("adapter", "", "PEFT LoRA adapter folder (default: the base model)"),
		tokenizer:  fs.String("tokenizer", "", "tokenizer.json (default: MODEL/tokenizer.json, then $BEAR_TOKENIZER, then the one make deps fetched)"),
		data:       fs.String("data", "", "dataset folder with id2name4Rec.json (required)"),
		dataset:    fs.String("dataset", "", "prompt strings: Office, Book, Clothing, Toy, Beauty, Electronic, Game, Music (default: the data folder's name)"),
		input:      fs.String("input", "", "`FILE` of histories, one JSON line each (see above)"),
		out:        fs.String("out", "", "output `FILE` of JSON lines (its folder must exist)"),
		force:      fs.Bool("force", false, "replace an existing --out file"),
		top:        fs.Int("top", 0, "items per history, 1 to --beams (default: --beams)"),
		beams:      fs.Int("beams", evaluate.DefaultBeams, "beams, and sequences returned per history (the official run: 10); at most the number of distinct titles in the catalogue"),
		constrain:  fs.String("constrain", "after", "where the trie constraint applies, as bear eval (default: the official inference's for the adapter's training loss, from its bear_training.json; after without one): after = log-softmax over the whole vocabulary, then disallowed tokens dropped; before = softmax over the allowed tokens only"),
		maxNew:     fs.Int("max-new-tokens", evaluate.DefaultMaxNewTokens, "HF max_new_tokens, the official 128 (0: no cap); a beam cut by it is returned with no item"),
		batch:      fs.Int("batch", 8, "histories per beam-search batch"),
		noKV:       fs.Bool("no-kv-cache", false, "rerun the whole sequence at every step instead of keeping a KV cache (the slow reference path)"),
		maxRows:    fs.Int("max-rows", 0, "rows per ONNX Runtime call (0: the scorer's default)"),
		noProgress: fs.Bool("no-progress", false, "no progress bar: plain progress lines instead, as when stderr is not a terminal"),
		ort:        addORTFlags(fs),
	}
	fs.Var(&f.history, "history", "a `TITLE` of the history, oldest first (repeatable): decode this one history and print a table instead of --input/--out")
	return f
}

func recommendMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recommend", recommendUsage)
	fs.SetOutput(stderr)
	f := defineRecommendFlags(fs)
	rf := addRunFileFlags(fs)
	if err := rf.parse(fs, args); err != nil {
		return err
	}
	if *rf.print {
		return rf.wrap(printRecommendConfig(fs, f, rf, stdout))
	}
	return rf.wrap(recommend(fs, f, stdout, stderr))
}

// printRecommendConfig checks the settings as a run would before its work starts, then prints
// them.
func printRecommendConfig(fs *flag.FlagSet, f *recommendFlags, rf *runFileFlags, stdout io.Writer) error {
	o, _, err := f.options(fs)
	if err != nil {
		return err
	}
	if err := setChosenConstraint(fs, o); err != nil {
		return err
	}
	return rf.printConfig(stdout, fs)
}

// recommend decodes the histories the parsed flags give and writes or prints their items.
func recommend(fs *flag.FlagSet, f *recommendFlags, stdout, stderr io.Writer) error {
	o, top, err := f.options(fs)
	if err != nil {
		return err
	}
	lines, histories, err := f.histories()
	if err != nil {
		return err
	}
	o.Log = func(format string, a ...any) { fmt.Fprintf(stderr, "bear recommend: "+format+"\n", a...) }
	if err := chooseConstraint(&o, isFlagSet(fs, "constrain")); err != nil {
		return err
	}
	var preds [][]evaluate.Prediction
	interrupted, err := decodeWithProgress(stderr, &o, "recommend", *f.noProgress, func(ctx context.Context) (err error) {
		preds, err = evaluate.Recommend(ctx, o, histories)
		return err
	})
	if interrupted {
		if *f.out != "" {
			return fmt.Errorf("interrupted: nothing written (%s was not created); rerun the command", *f.out)
		}
		return errors.New("interrupted")
	}
	if he := (*evaluate.HistoryError)(nil); errors.As(err, &he) {
		if len(f.history) > 0 {
			return fmt.Errorf("--history: %v", he.Err)
		}
		return fmt.Errorf("--input %s:%d: %v", *f.input, lines[he.Index].line, he.Err)
	}
	if err != nil {
		return err
	}
	for i := range preds {
		preds[i] = preds[i][:min(top, len(preds[i]))]
	}
	if len(f.history) > 0 {
		return printRecommendTable(stdout, preds[0])
	}
	return writeRecommendations(*f.out, *f.force, lines, preds)
}

// options validates every flag and turns them into evaluate.Options and the --top count.
func (f *recommendFlags) options(fs *flag.FlagSet) (evaluate.Options, int, error) {
	if *f.model == "" || *f.data == "" {
		return evaluate.Options{}, 0, errors.New("--model and --data are required")
	}
	o := evaluate.Options{
		Model: *f.model, Adapter: *f.adapter, Data: *f.data, Dataset: *f.dataset, Beams: *f.beams,
		MaxNewTokens: *f.maxNew, Batch: *f.batch, KVCache: !*f.noKV, MaxRows: *f.maxRows,
	}
	switch *f.constrain {
	case "after":
		o.Mode = decode.AfterSoftmax
	case "before":
		o.Mode = decode.BeforeSoftmax
	default:
		return o, 0, fmt.Errorf("--constrain %q: want after or before", *f.constrain)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"beams", *f.beams}, {"batch", *f.batch}} {
		if err := checkPositive(c.name, c.v); err != nil {
			return o, 0, err
		}
	}
	if *f.maxNew < 0 || *f.maxRows < 0 {
		return o, 0, fmt.Errorf("--max-new-tokens %d, --max-rows %d: want 0 or more", *f.maxNew, *f.maxRows)
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = evaluate.NoMaxNewTokens // evaluate.Options reads 0 as the default cap
	}
	top := *f.beams
	if isFlagSet(fs, "top") {
		top = *f.top
		if top < 1 || top > *f.beams {
			return o, 0, fmt.Errorf("--top %d: want 1 to --beams %d (--beams does not follow --top: pass --beams %d too for more)", top, *f.beams, max(top, 1))
		}
	}
	if err := f.checkFiles(); err != nil {
		return o, 0, err
	}
	var err error
	if o.Tokenizer, err = findTokenizer(*f.tokenizer, *f.model); err != nil {
		return o, 0, err
	}
	o.Runtime, err = f.ort.modelOptions()
	return o, top, err
}

// checkFiles checks the mode (--history, or --input with --out) and the files: --input must be
// a file, and --out a new file (or, with --force, an existing one) in an existing folder that
// is none of the inputs and lies inside none of them.
func (f *recommendFlags) checkFiles() error {
	if len(f.history) > 0 {
		if *f.input != "" || *f.out != "" || *f.force {
			return errors.New("--history prints its table: it takes no --input, --out or --force")
		}
		return nil
	}
	if *f.input == "" || *f.out == "" {
		return errors.New("give --input and --out, or --history")
	}
	if st, err := os.Stat(*f.input); err != nil {
		return fmt.Errorf("--input: %w", err)
	} else if st.IsDir() {
		return fmt.Errorf("--input %s is a folder, want a file of JSON lines", *f.input)
	}
	inputs := []string{*f.input, *f.model, *f.data}
	for _, p := range []string{*f.adapter, *f.tokenizer} {
		if p != "" {
			inputs = append(inputs, p)
		}
	}
	return checkOutFile(*f.out, *f.force, inputs...)
}

// inputLine is one history of --input: its line number and its user, echoed back.
type inputLine struct {
	line int
	user json.RawMessage
}

// histories reads the histories to decode: the one of --history, or every line of --input.
func (f *recommendFlags) histories() ([]inputLine, []evaluate.History, error) {
	if len(f.history) > 0 {
		return []inputLine{{line: 0, user: json.RawMessage("null")}}, []evaluate.History{{Titles: f.history}}, nil
	}
	return readRecommendInput(*f.input)
}

// readRecommendInput reads and checks every line of an --input file (the catalogue is checked
// by evaluate.Recommend, still before the model is loaded).
func readRecommendInput(path string) ([]inputLine, []evaluate.History, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--input: %w", err)
	}
	var lines []inputLine
	var histories []evaluate.History
	for i, text := range bytes.Split(data, []byte{'\n'}) {
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		user, h, err := parseRecommendLine(text)
		if err != nil {
			return nil, nil, fmt.Errorf("--input %s:%d: %w", path, i+1, err)
		}
		lines = append(lines, inputLine{line: i + 1, user: user})
		histories = append(histories, h)
	}
	if len(histories) == 0 {
		return nil, nil, fmt.Errorf("--input %s holds no histories", path)
	}
	return lines, histories, nil
}

// parseRecommendLine reads one line: a JSON object with "user" and one of "item_ids" and
// "titles", nothing else, each key once.
func parseRecommendLine(text []byte) (json.RawMessage, evaluate.History, error) {
	var h evaluate.History
	if !utf8.Valid(text) {
		return nil, h, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil {
		return nil, h, fmt.Errorf("invalid JSON: %w", err)
	} else if tok != json.Delim('{') {
		return nil, h, fmt.Errorf(`want a JSON object {"user": ..., "item_ids": [...]} or {"user": ..., "titles": [...]}, got %v`, tok)
	}
	values := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, h, fmt.Errorf("invalid JSON: %w", err)
		}
		key, _ := tok.(string) // object keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, h, fmt.Errorf("invalid JSON: %w", err)
		}
		switch _, dup := values[key]; {
		case key != "user" && key != "item_ids" && key != "titles":
			return nil, h, fmt.Errorf(`unknown key %q: want "user", and "item_ids" or "titles"`, key)
		case dup:
			return nil, h, fmt.Errorf("key %q appears twice", key)
		}
		values[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, h, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, h, errors.New("invalid JSON: data after the object")
	}
	return historyOf(values)
}

// historyOf checks the keys and lists of one line.
func historyOf(values map[string]json.RawMessage) (json.RawMessage, evaluate.History, error) {
	var h evaluate.History
	user, ok := values["user"]
	if !ok {
		return nil, h, errors.New(`no "user" key (any JSON value, echoed back in the output)`)
	}
	ids, hasIDs := values["item_ids"]
	titles, hasTitles := values["titles"]
	var err error
	switch {
	case hasIDs && hasTitles:
		return nil, h, errors.New(`both "item_ids" and "titles": give one of them`)
	case hasIDs:
		h.ItemIDs, err = jsonList[int](ids, "item_ids", "an item id (an integer)")
	case hasTitles:
		h.Titles, err = jsonList[string](titles, "titles", "a title (a string)")
	default:
		return nil, h, errors.New(`neither "item_ids" nor "titles": give the history as one of them`)
	}
	return user, h, err
}

// jsonList decodes a non-empty JSON list whose every element is a T (null is none).
func jsonList[T any](raw json.RawMessage, key, want string) ([]T, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, fmt.Errorf("%q is %s, want a list", key, raw)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("empty history: %q is an empty list", key)
	}
	out := make([]T, len(elems))
	for i, e := range elems {
		var v *T
		if err := json.Unmarshal(e, &v); err != nil || v == nil {
			return nil, fmt.Errorf("%s[%d] is %s, want %s", key, i, e, want)
		}
		out[i] = *v
	}
	return out, nil
}

// recommendedItem is one entry of an output line's "items".
type recommendedItem struct {
	Rank    int     `json:"rank"`
	ItemID  *int    `json:"item_id"` // null for a beam cut by --max-new-tokens
	ItemIDs []int   `json:"item_ids"`
	Title   string  `json:"title"`
	Score   float64 `json:"score"`
}

func recommendedItems(preds []evaluate.Prediction) []recommendedItem {
	items := make([]recommendedItem, len(preds))
	for j, p := range preds {
		items[j] = recommendedItem{Rank: j + 1, ItemIDs: p.ItemIDs, Title: p.Title, Score: p.Score}
		if len(p.ItemIDs) > 0 {
			items[j].ItemID = &p.ItemIDs[0]
		}
	}
	return items
}

// writeRecommendations writes --out whole through a temporary file; without force it refuses a
// file that appeared since the flags were checked.
func writeRecommendations(out string, force bool, lines []inputLine, preds [][]evaluate.Prediction) error {
	if err := checkOutFile(out, force); err != nil {
		return err
	}
	return atomicfs.WriteBuffered(out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i, l := range lines {
			rec := struct {
				User  json.RawMessage   `json:"user"`
				Items []recommendedItem `json:"items"`
			}{l.user, recommendedItems(preds[i])}
			if err := enc.Encode(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// printRecommendTable prints one history's list: rank, item ids, score, title.
func printRecommendTable(w io.Writer, preds []evaluate.Prediction) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\titem_id\tscore\t  title")
	for _, it := range recommendedItems(preds) {
		ids, title := "-", it.Title
		if it.ItemID == nil {
			title += " [cut by --max-new-tokens: no item]"
		} else {
			ids = strings.Trim(strings.ReplaceAll(fmt.Sprint(it.ItemIDs), " ", ","), "[]")
		}
		fmt.Fprintf(tw, "%d\t%s\t%.6f\t  %s\n", it.Rank, ids, it.Score, title)
	}
	return tw.Flush()
}
