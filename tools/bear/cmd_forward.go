package main

import (
	"bufio"
	"fmt"
	"github.com/bearrec/bear/onnx/hf"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/tokenize"
)

func init() {
	register(&command{name: "forward", summary: "run the forward pass and print logits as JSON", run: func(args []string) error {
		return forwardMain(args, os.Stdout)
	}, options: ortOptions})
}

// ortFlags are the flags every command that runs ONNX Runtime shares.
type ortFlags struct {
	lib, device, cache, weights *string
	threads                     *int
	tf32                        *bool
}

func addORTFlags(fs interface {
	String(string, string, string) *string
	Int(string, int, string) *int
	Bool(string, bool, string) *bool
}) ortFlags {
	return ortFlags{
		// The flag package shows a backquoted word of a usage text as the value's name (FILE).
		lib:     fs.String("ort-lib", "", "ONNX Runtime shared library `FILE` (default $"+ortrun.LibraryEnv+", then the .cache/onnxruntime that make deps fills)"),
		device:  fs.String("device", "cpu", "execution provider: cpu or cuda"),
		threads: fs.Int("threads", 0, "CPU threads (0: one per core)"),
		weights: fs.String("weights", "", "how ONNX Runtime reads the frozen base weights: mapped (the checkpoint's files mapped once per process, at their stored precision, cast at use), widened (read once into float32 copies in memory), in-place (read from the files by each session, at their stored precision) or converted (a float32 copy in --cache-dir); default on cpu: widened for decoding, mapped otherwise; on cuda: in-place"),
		cache:   fs.String("cache-dir", "", "folder for weights converted to float32 (--weights converted; default: the user cache folder)"),
		tf32:    fs.Bool("tf32", true, "with --device cuda, let float32 matrix products use TF32 (ONNX Runtime's default: faster, about 1e-3 relative error; false keeps float32)"),
	}
}

// check refuses a negative --threads and an unknown --device.
func (o ortFlags) check() error {
	if *o.threads < 0 {
		return fmt.Errorf("--threads %d: want 0 (one per core) or a positive count", *o.threads)
	}
	if _, err := ortrun.ParseDevice(*o.device); err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	if _, err := ortrun.ParseWeightSource(*o.weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	return nil
}

// modelOptions checks the flags, then loads ONNX Runtime.
func (o ortFlags) modelOptions() (ortrun.ModelOptions, error) {
	if err := o.check(); err != nil {
		return ortrun.ModelOptions{}, err
	}
	dev, err := ortrun.ParseDevice(*o.device)
	if err != nil {
		return ortrun.ModelOptions{}, err
	}
	if err := ortrun.InitDevice(*o.lib, dev); err != nil {
		return ortrun.ModelOptions{}, err
	}
	// $BEAR_ORT_PROFILE=prefix makes ONNX Runtime write a per-node JSON trace of every session.
	so := ortrun.SessionOptions{Device: dev, Threads: *o.threads, NoTF32: !*o.tf32, ProfilePrefix: os.Getenv("BEAR_ORT_PROFILE")}
	w, err := ortrun.ParseWeightSource(*o.weights)
	if err != nil {
		return ortrun.ModelOptions{}, err
	}
	return ortrun.ModelOptions{SessionOptions: so, Weights: w, CacheDir: *o.cache}, nil
}

func forwardMain(args []string, stdout io.Writer) error {
	fs := newFlagSet("forward", "--model DIR (--ids 128000,791,... | --text STR) [flags]")
	model := fs.String("model", "", "checkpoint folder in the HF layout (required)")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder")
	idsFlag := fs.String("ids", "", "comma-separated token ids")
	text := fs.String("text", "", "text to tokenize (BOS is added)")
	tokenizer := fs.String("tokenizer", "", "tokenizer.json for --text (default: MODEL/tokenizer.json, then $BEAR_TOKENIZER, then the one make deps fetched)")
	positions := fs.String("positions", "last", "positions to print: last, all, or comma-separated indices")
	top := fs.Int("top", 0, "print only the top K tokens per position instead of whole rows (0: whole rows)")
	of := addORTFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	if *top < 0 {
		return fmt.Errorf("--top %d: want 0 (whole rows) or a positive count", *top)
	}
	if err := of.check(); err != nil {
		return err
	}
	ids, err := forwardIDs(*model, *idsFlag, *text, *tokenizer)
	if err != nil {
		return err
	}
	pos, err := parsePositions(*positions, len(ids))
	if err != nil {
		return err
	}
	cfg, err := modelConfigFor(*model, ids)
	if err != nil {
		return err
	}
	ck, err := hf.OpenWith(*model, cfg)
	if err != nil {
		return err
	}
	opts, err := of.modelOptions()
	if err != nil {
		return err
	}
	var ad *peft.Adapter
	if *adapter != "" {
		if ad, err = peft.ReadAdapter(*adapter, cfg); err != nil {
			return err
		}
		opts.LoRA = &ad.Spec
	}
	m, err := ortrun.Load(ck, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	if ad != nil {
		if err := m.SetAdapter(ad); err != nil {
			return err
		}
	}
	b := ortrun.NewTokenBatch([][]int64{ids})
	index := make([]int64, len(pos))
	for i, p := range pos {
		index[i] = b.Index(0, p)
	}
	logits, err := m.Logits(b, index, nil, 0)
	if err != nil {
		return err
	}
	return writeLogitsJSON(stdout, pos, logits, m.Config.VocabSize, *top)
}

// forwardIDs is the sequence of --ids, or of --text encoded with the tokenizer findTokenizer
// resolves from --tokenizer and the model folder.
func forwardIDs(model, idsFlag, text, tokenizer string) ([]int64, error) {
	switch {
	case idsFlag != "" && text != "":
		return nil, fmt.Errorf("give --ids or --text, not both")
	case idsFlag != "":
		var ids []int64
		for i, f := range strings.Split(idsFlag, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("--ids: entry %d %q is not an integer", i, f)
			}
			ids = append(ids, v)
		}
		return ids, nil
	case text != "":
		return encodeText(model, text, tokenizer)
	}
	return nil, fmt.Errorf("give --ids or --text")
}

// modelConfigFor reads the model's configuration and checks the --ids against its vocabulary,
// before any weight is read.
func modelConfigFor(model string, ids []int64) (hf.Config, error) {
	cfg, err := hf.ReadConfig(model)
	if err != nil {
		return cfg, err
	}
	return cfg, checkIDs("--ids", ids, cfg.VocabSize)
}

// checkIDs refuses token ids outside the model's vocabulary, which ONNX Runtime would otherwise
// meet deep inside the embedding lookup.
func checkIDs(flagName string, ids []int64, vocab int) error {
	for i, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return fmt.Errorf("%s: entry %d is token %d, outside the model's vocabulary [0, %d)", flagName, i, id, vocab)
		}
	}
	return nil
}

func parsePositions(s string, n int) ([]int, error) {
	switch s {
	case "last":
		return []int{n - 1}, nil
	case "all":
		pos := make([]int, n)
		for i := range pos {
			pos[i] = i
		}
		return pos, nil
	}
	var pos []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 0 || p >= n {
			return nil, fmt.Errorf("--positions: %q is not a position in [0, %d)", f, n)
		}
		pos = append(pos, p)
	}
	return pos, nil
}

// writeLogitsJSON prints {"positions":[...],"logits":[[...],...]}, or with top > 0
// {"positions":[...],"top":[[{"id":..,"logit":..},...],...]}. Floats use the shortest decimal
// form that reads back to the same float32.
func writeLogitsJSON(f io.Writer, pos []int, logits []float32, vocab, top int) error {
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, `{"positions":[`)
	for i, p := range pos {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(strconv.Itoa(p))
	}
	if top > 0 {
		w.WriteString(`],"top":[`)
	} else {
		w.WriteString(`],"logits":[`)
	}
	for i := range pos {
		if i > 0 {
			w.WriteByte(',')
		}
		row := logits[i*vocab : (i+1)*vocab]
		w.WriteByte('[')
		if top > 0 {
			order := make([]int, vocab)
			for j := range order {
				order[j] = j
			}
			sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
			for j, id := range order[:min(top, vocab)] {
				if j > 0 {
					w.WriteByte(',')
				}
				fmt.Fprintf(w, `{"id":%d,"logit":%s}`, id, strconv.FormatFloat(float64(row[id]), 'g', -1, 32))
			}
		} else {
			for j, v := range row {
				if j > 0 {
					w.WriteByte(',')
				}
				w.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
		}
		w.WriteByte(']')
	}
	w.WriteString("]}\n")
	return w.Flush()
}

// encodeText tokenizes text with the tokenizer findTokenizer resolves, BOS included (as HF's
// tokenizer(text) does).
func encodeText(model, text, tokenizer string) ([]int64, error) {
	path, err := findTokenizer(tokenizer, model)
	if err != nil {
		return nil, err
	}
	tok, err := tokenize.Load(path)
	if err != nil {
		return nil, err
	}
	ids := tok.EncodeSpecial(text)
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out, nil
}
