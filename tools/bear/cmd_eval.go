package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/runtime/evaluate/results"
)

func init() {
	register(&command{name: "eval", summary: "evaluate with trie-constrained beam search (NDCG/HR), shard merging, pruning analysis", run: func(args []string) error {
		return evalMain(args, os.Stdout, os.Stderr)
	}, options: joinOptions(evalOptions, ortOptions)})
}

const evalUsage = `--model DIR [--adapter DIR] --data DIR [--split test] [--limit N] [--beams 10] [--shard i/n] --out DIR [flags]
       bear eval --merge --out DIR SHARD_DIR...

Decodes every user of an Amazon split (user_id,item_ids[,...] read by header) with the
official inference prompt and trie-constrained beam search, and writes DIR/predictions.json
(the official schema: instruction, input, output, predict, scores; plus bear_* fields: row,
user id, target item, predicted item ids, ranks) and DIR/metrics.json (NDCG@1/5/10, HR@1/5/10
by item identity and by the official string match, users, config, timing; pruning with
--pruning). Finished batches go to DIR/journal.jsonl: an interrupted run resumes (--fresh
discards it). --shard i/n takes rows i, i+n, i+2n, ... of the split (after --limit);
--merge recomputes exact metrics over the union of shard folders of one configuration.

flags:`

// evalFlags are the flags of `bear eval`, defined on one flag set.
type evalFlags struct {
	model, adapter, tokenizer, data, dataset, split, constrain, shard, out *string
	limit, beams, maxNew, batch, maxRows, maxFrontier                      *int
	exactMemory                                                            *float64
	exactLP                                                                *float64
	noKV, pruning, official, fresh, merge, noProgress                      *bool
	ort                                                                    ortFlags
}

func defineEvalFlags(fs *flag.FlagSet) *evalFlags {
	return &evalFlags{
		model:       fs.String("model", "", "checkpoint folder in the HF layout (required)"),
		adapter:     fs.String("adapter", "", "PEFT LoRA adapter folder (default: the base model)"),
		tokenizer:   fs.String("tokenizer", "", "tokenizer.json (default: MODEL/tokenizer.json, then $BEAR_TOKENIZER, then the one make deps fetched)"),
		data:        fs.String("data", "", "dataset folder with id2name4Rec.json and the split files (required)"),
		dataset:     fs.String("dataset", "", "prompt strings: Office, Book, Clothing, Toy, Beauty, Electronic, Game, Music (default: the data folder's name)"),
		split:       fs.String("split", "test", "split: NAME (the file NAME_*.csv in --data, e.g. test_5000.csv), a file name in --data, or a path"),
		limit:       fs.Int("limit", 0, "evaluate only the first N rows of the split (0: all)"),
		beams:       fs.Int("beams", evaluate.DefaultBeams, "beams, and sequences returned per user (the official run: 10); at most the number of distinct titles in the catalogue"),
		constrain:   fs.String("constrain", "after", "where the trie constraint applies (default: what the official inference uses for the adapter's training loss, from its bear_training.json: before for MSL and BEAR, after for LML; after without one): after = log-softmax over the whole vocabulary, then disallowed tokens dropped (HF prefix_allowed_tokens_fn; official --constrained_before_softmax False); before = softmax over the allowed tokens only (the official custom CBS, --constrained_before_softmax True)"),
		maxNew:      fs.Int("max-new-tokens", evaluate.DefaultMaxNewTokens, "HF max_new_tokens, the official generate call's 128 (0: no cap, the trie alone bounds every title). Beams of titles of 128 tokens or more (two in Office) end unfinished: HF returns them as hypotheses that take a slot of the returned list and never match a target"),
		batch:       fs.Int("batch", 8, "users per beam-search batch (results do not depend on it)"),
		shard:       fs.String("shard", "", "evaluate shard i of n: rows i, i+n, i+2n, ... (format i/n)"),
		noKV:        fs.Bool("no-kv-cache", false, "rerun the whole sequence at every step instead of keeping a KV cache (the slow reference path)"),
		maxRows:     fs.Int("max-rows", 0, "rows per ONNX Runtime call (0: the scorer's default)"),
		pruning:     fs.Bool("pruning", false, "pruning analysis: the exact top-B items by full-sequence score over the whole catalogue, and whether beam search pruned a target that was in it (incorrect pruning), with the step it fell out"),
		exactLP:     fs.Float64("exact-length-penalty", 0, "--pruning: the exact top-B ranks by sum(log p)/len^P. 0 (the default) = the plain sequence log-probability (the paper's incorrect pruning), whose bound prunes where the model is confident: with --constrain before, 30 Office users of a trained tiny model took 26 s and 1.6 GB (at most 258 open prefixes per user); with --constrain after, the trie's first levels stay open, about 2 100 rows per user (5.7 GB and 65 s for 8 users on tiny, beyond the default --exact-memory). 1 = the beam search's own final score (length-normalised, as HF), whose bound barely prunes: most of the trie is scored (about 35 000 of Office's 49 671 nodes, 20 s per user on tiny), about 2 000 rows per user"),
		maxFrontier: fs.Int("max-frontier", 0, "--pruning: cap on open prefixes per user and depth of the exact search (0: none, exact; capped users are counted as exact_search_capped in metrics.json, their exact top-B no longer guaranteed)"),
		exactMemory: fs.Float64("exact-memory", float64(evaluate.DefaultExactMemory)/(1<<30), "--pruning: memory bound of the exact search in GiB (0: none). One model call holds the open prefixes of all users of a batch, each with the prompt's KV cache (2*layers*kv_heads*head_dim*4 bytes per token: 2 KiB on the small preset, 64 KiB at Llama-3.2-1B) and vocabulary-wide logits; the bound becomes a row count at the model's shape and the longest prompt (at 400 tokens: 838 rows on small, 32 at 1B). Users that do not fit together are searched in turns, with the same results; a user that alone needs more stops the run with an error naming this flag (its finished users stay in the journal)"),
		official:    fs.Bool("official-match", false, "headline metrics from the official string comparison (decoded titles after transformers' space cleanup, [1:-1], first equal) instead of item identity; metrics.json holds both"),
		out:         fs.String("out", "", "output folder (required)"),
		fresh:       fs.Bool("fresh", false, "discard the journal of an interrupted run in --out instead of resuming it"),
		merge:       fs.Bool("merge", false, "merge the shard folders given as arguments into --out"),
		noProgress:  fs.Bool("no-progress", false, "no progress bar: plain progress lines instead (at the start, once a minute, at the end), as when stderr is not a terminal"),
		ort:         addORTFlags(fs),
	}
}

func evalMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", evalUsage)
	fs.SetOutput(stderr)
	f := defineEvalFlags(fs)
	rf := addRunFileFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := rf.apply(fs); err != nil {
		return err
	}
	if *rf.print {
		return rf.wrap(printEvalConfig(fs, f, rf, stdout))
	}
	return rf.wrap(runEval(fs, f, stdout, stderr))
}

// printEvalConfig checks the settings as an evaluation would before its work starts, then
// prints them.
func printEvalConfig(fs *flag.FlagSet, f *evalFlags, rf *runFileFlags, stdout io.Writer) error {
	if *f.merge {
		return fmt.Errorf("--print-config: --merge takes no settings beyond --out")
	}
	o, err := f.options()
	if err != nil {
		return err
	}
	if err := f.ort.check(); err != nil {
		return err
	}
	if err := setChosenConstraint(fs, o); err != nil {
		return err
	}
	return rf.printConfig(stdout, fs, "merge")
}

// runEval evaluates (or merges shards) as the parsed flags say.
func runEval(fs *flag.FlagSet, f *evalFlags, stdout, stderr io.Writer) error {
	if *f.out == "" {
		return fmt.Errorf("--out is required")
	}
	if *f.merge {
		if fs.NArg() == 0 {
			return fmt.Errorf("--merge: give the shard folders as arguments")
		}
		m, err := evaluate.Merge(fs.Args(), *f.out)
		if err != nil {
			return err
		}
		printMetrics(stdout, m, *f.out)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (shard folders go with --merge)", fs.Args())
	}
	o, err := f.options()
	if err != nil {
		return err
	}
	o.Log = func(format string, a ...any) { fmt.Fprintf(stderr, "bear eval: "+format+"\n", a...) }
	if err := chooseConstraint(&o, isFlagSet(fs, "constrain")); err != nil {
		return err
	}
	var m *results.Metrics
	interrupted, err := decodeWithProgress(stderr, &o, "eval", *f.noProgress, func(ctx context.Context) (err error) {
		m, err = evaluate.Run(ctx, o)
		return err
	})
	if interrupted {
		return fmt.Errorf("interrupted: the finished batches are in %s; rerun the same command to continue", filepath.Join(o.Out, "journal.jsonl"))
	}
	if err != nil {
		return err
	}
	printMetrics(stdout, m, *f.out)
	return nil
}

// decodeWithProgress runs one decoding job of bear eval or bear recommend: its users' progress
// on stderr under label, and SIGINT or SIGTERM cancelling the context decode gets. interrupted
// says that a signal stopped it before it finished.
func decodeWithProgress(stderr io.Writer, o *evaluate.Options, label string, noProgress bool, decode func(context.Context) error) (interrupted bool, err error) {
	users, finish := evalProgress(stderr, useBar(stderr, noProgress), label, time.Now)
	o.Progress = users
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = decode(ctx)
	finish()
	return ctx.Err() != nil && errors.Is(err, ctx.Err()), err
}

// chooseConstraint sets the constraint mode the user did not give: the official inference's for
// the loss the adapter (or fully trained model) was trained with, as its training record says,
// else HF's default (after the softmax). It says which it chose and why.
func chooseConstraint(o *evaluate.Options, given bool) error {
	if given {
		return nil
	}
	dir := o.Model
	if o.Adapter != "" {
		dir = o.Adapter
	}
	rec, ok, err := evaluate.ReadTrainingRecord(dir)
	if err != nil {
		return err
	}
	if !ok {
		o.Mode = decode.AfterSoftmax
		o.Log("--constrain after: HF's prefix_allowed_tokens_fn, the official default (%s has no %s saying how it was trained)", dir, evaluate.TrainingRecordName)
		return nil
	}
	o.Mode = evaluate.OfficialMode(rec.Loss)
	o.Log("--constrain %s: what the official inference uses for a model trained with %s, as %s says (pass --constrain to choose)",
		constrainFlag(o.Mode), strings.ToUpper(rec.Loss), filepath.Join(dir, evaluate.TrainingRecordName))
	return nil
}

// setChosenConstraint sets --constrain to the constraint chooseConstraint picks for o (what
// the model's training record says, unless the flag was given), for printing the settings.
func setChosenConstraint(fs *flag.FlagSet, o evaluate.Options) error {
	o.Log = func(string, ...any) {}
	if err := chooseConstraint(&o, isFlagSet(fs, "constrain")); err != nil {
		return err
	}
	return fs.Set("constrain", constrainFlag(o.Mode))
}

func constrainFlag(m decode.Mode) string {
	if m == decode.BeforeSoftmax {
		return "before"
	}
	return "after"
}

// options validates the flags of an evaluation run and turns them into evaluate.Options.
func (f *evalFlags) options() (evaluate.Options, error) {
	if *f.model == "" || *f.data == "" {
		return evaluate.Options{}, fmt.Errorf("--model and --data are required")
	}
	o := evaluate.Options{
		Model: *f.model, Adapter: *f.adapter, Data: *f.data, Dataset: *f.dataset, Split: *f.split,
		Limit: *f.limit, Beams: *f.beams, MaxNewTokens: *f.maxNew, Batch: *f.batch, KVCache: !*f.noKV, MaxRows: *f.maxRows,
		Pruning: *f.pruning, ExactLengthPenalty: *f.exactLP, MaxFrontier: *f.maxFrontier, OfficialMatch: *f.official,
		Out: *f.out, Fresh: *f.fresh,
	}
	switch *f.constrain {
	case "after":
		o.Mode = decode.AfterSoftmax
	case "before":
		o.Mode = decode.BeforeSoftmax
	default:
		return o, fmt.Errorf("--constrain %q: want after or before", *f.constrain)
	}
	if *f.beams < 1 || *f.batch < 1 || *f.limit < 0 || *f.maxNew < 0 || *f.maxFrontier < 0 {
		return o, fmt.Errorf("--beams and --batch must be positive, --limit, --max-new-tokens and --max-frontier not negative")
	}
	if err := checkFinite("exact-memory", *f.exactMemory); err != nil || *f.exactMemory < 0 {
		return o, fmt.Errorf("--exact-memory %v: want GiB, 0 or more (0: no bound)", *f.exactMemory)
	}
	o.ExactMemory = int64(*f.exactMemory * (1 << 30))
	if o.ExactMemory == 0 {
		o.ExactMemory = evaluate.NoExactMemory // evaluate.Options reads 0 as the default bound
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = evaluate.NoMaxNewTokens // evaluate.Options reads 0 as the default cap
	}
	if *f.shard != "" {
		sh, err := evaluate.ParseShard(*f.shard)
		if err != nil {
			return o, fmt.Errorf("--shard: %w", err)
		}
		o.Shard = sh
	}
	var err error
	if o.Tokenizer, err = findTokenizer(*f.tokenizer, *f.model); err != nil {
		return o, err
	}
	o.Runtime, err = f.ort.modelOptions()
	return o, err
}

// printMetrics prints both metric sets (the headline first), the pruning rate and the timing.
func printMetrics(w io.Writer, m *results.Metrics, out string) {
	names := []string{"item_match", "official_match"}
	if m.Primary == "official_match" {
		names[0], names[1] = names[1], names[0]
	}
	for _, n := range names {
		mm := map[string]map[string]float64{"item_match": m.ItemMatch, "official_match": m.OfficialMatch}[n]
		var keys []string
		for k := range mm {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(a, b int) bool { return metricOrder(keys[a]) < metricOrder(keys[b]) })
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.6f", k, mm[k]))
		}
		fmt.Fprintf(w, "%-15s %s\n", n, strings.Join(parts, "  "))
	}
	if p := m.Pruning; p != nil {
		fmt.Fprintf(w, "pruning         %d of %d users incorrectly pruned (rate %.4f; %.4f of %d targets in the exact top-%d)\n",
			p.Pruned, p.Users, p.Rate, p.RateOfExact, p.InExact, m.Config.Beams)
		fmt.Fprintf(w, "lost hits       %d targets pruned although they outscore the last returned (%.4f of %d returned + lost)\n",
			p.LostHits, p.LostHitRate, p.InBeam+p.LostHits)
		if p.Truncated > 0 {
			fmt.Fprintf(w, "exact search    capped by --max-frontier for %d of %d users: their exact top-%d is not guaranteed\n", p.Truncated, p.Users, m.Config.Beams)
		}
	}
	if m.DroppedIDs > 0 {
		fmt.Fprintf(w, "dropped         %d item ids of these users' rows are missing from the catalogue (dropped, as the official code does)\n", m.DroppedIDs)
	}
	t := m.Timing
	if t.Users == 0 {
		fmt.Fprintf(w, "users %d (shard %s), all from the journal of the interrupted run: nothing left to decode; %s\n",
			m.Users, m.Config.Shard, filepath.Join(out, results.MetricsName))
		return
	}
	resumed := ""
	if n := m.Users - t.Users; n > 0 {
		resumed = fmt.Sprintf(", %d of them from the journal", n)
	}
	fmt.Fprintf(w, "users %d (shard %s%s), %.2f users/s, %.1f%% of decoding time outside the scorer; %s\n",
		m.Users, m.Config.Shard, resumed, t.UsersPerS, 100*t.GoShare, filepath.Join(out, results.MetricsName))
}

// metricOrder sorts NDCG@K before HR@K, each by K.
func metricOrder(k string) string {
	name, cut, _ := strings.Cut(k, "@")
	prefix := "1"
	if name == "NDCG" {
		prefix = "0"
	}
	return prefix + fmt.Sprintf("%05s", cut)
}
