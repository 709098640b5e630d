package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/bearrec/bear/tokenize"
)

// record is one line of the corpus and of the reference file.
type record struct {
	Cat     string `json:"cat"`
	Text    string `json:"text"`
	Special bool   `json:"special,omitempty"`
	IDs     []int  `json:"ids,omitempty"`
}

var datasets = []string{"Office", "Book", "Clothing", "Toy"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tokcheck corpus|check|sample|incontext|sugarme [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("tokcheck "+os.Args[1], flag.ExitOnError)
	data := fs.String("data", "", "folder with one sub-folder per dataset (Office, Book, Clothing, Toy)")
	out := fs.String("out", "", "output file")
	rows := fs.Int("rows", 2000, "prompts from the first ROWS rows of each split file")
	ref := fs.String("ref", "", "reference file written by tools/reference/tokref.js")
	tokPath := fs.String("tokenizer", os.Getenv("BEAR_TOKENIZER"), "tokenizer.json")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "corpus":
		err = corpus(*data, *out, *rows)
	case "check":
		err = check(*tokPath, *ref)
	case "sample":
		err = sample(*tokPath, *ref, *out)
	case "incontext":
		err = incontext(*tokPath, *data)
	case "sugarme":
		err = sugarme(*tokPath, *ref)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokcheck:", err)
		os.Exit(1)
	}
}

func titles(cat *tokenize.Catalogue) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range cat.IDs {
		t := cat.Titles[id]
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func corpus(data, out string, nrows int) error {
	if data == "" || out == "" {
		return fmt.Errorf("corpus needs -data and -out")
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	put := func(r record) {
		enc.Encode(r)
		n++
	}
	for _, s := range trickyStrings() {
		put(record{Cat: "tricky", Text: s})
	}
	for _, s := range randomStrings(20000) {
		put(record{Cat: "random", Text: s})
	}
	for _, s := range trickyStrings()[:40] {
		put(record{Cat: "tricky+bos", Text: s, Special: true})
	}
	for _, ds := range datasets {
		cat, err := tokenize.ReadCatalogue(filepath.Join(data, ds, tokenize.CatalogueFile))
		if err != nil {
			return err
		}
		for _, t := range titles(cat) {
			put(record{Cat: "title/" + ds, Text: tokenize.Quote(t)})
		}
		for _, t := range titles(cat) {
			put(record{Cat: "incontext/" + ds, Text: tokenize.ResponseSeparator + tokenize.Quote(t)})
		}
		p, err := tokenize.DatasetPrompt(ds)
		if err != nil {
			return err
		}
		for _, split := range []string{"train_10000.csv", "test_5000.csv"} {
			path := filepath.Join(data, ds, split)
			if _, err := os.Stat(path); err != nil {
				continue // Toy has no training file
			}
			rows, err := tokenize.ReadSplit(path, cat)
			if err != nil {
				return err
			}
			name := strings.SplitN(split, "_", 2)[0]
			for _, r := range rows[:min(nrows, len(rows))] {
				put(record{Cat: "train/" + ds + "/" + name, Text: p.Train(r.History, r.Target), Special: true})
				put(record{Cat: "infer/" + ds + "/" + name, Text: p.Inference(r.History), Special: true})
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "tokcheck: %d texts in %s\n", n, out)
	return f.Close()
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = gz
	}
	var out []record
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var rec record
		if err := dec.Decode(&rec); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

func check(tokPath, ref string) error {
	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return err
	}
	recs, err := readRecords(ref)
	if err != nil {
		return err
	}
	type count struct{ n, ids, dec int }
	counts := map[string]*count{}
	shown := 0
	for _, r := range recs {
		c := counts[r.Cat]
		if c == nil {
			c = &count{}
			counts[r.Cat] = c
		}
		c.n++
		var ids []int
		want := r.Text
		if r.Special {
			ids = tok.EncodeSpecial(r.Text)
			want = tokenize.BOSToken + r.Text
		} else {
			ids = tok.Encode(r.Text)
		}
		if !slices.Equal(ids, r.IDs) {
			c.ids++
			if shown < 10 {
				shown++
				fmt.Printf("MISMATCH %s %q\n  got  %v\n  want %v\n", r.Cat, r.Text, ids, r.IDs)
			}
		}
		if got, err := tok.Decode(r.IDs); err != nil || got != want {
			c.dec++
			if shown < 10 {
				shown++
				fmt.Printf("DECODE %s %q: got %q (%v)\n", r.Cat, r.Text, got, err)
			}
		}
	}
	cats := make([]string, 0, len(counts))
	for k := range counts {
		cats = append(cats, k)
	}
	sort.Strings(cats)
	total := count{}
	fmt.Printf("%-24s %8s %10s %10s\n", "category", "records", "id diffs", "decode diffs")
	for _, k := range cats {
		c := counts[k]
		fmt.Printf("%-24s %8d %10d %10d\n", k, c.n, c.ids, c.dec)
		total.n += c.n
		total.ids += c.ids
		total.dec += c.dec
	}
	fmt.Printf("%-24s %8d %10d %10d\n", "total", total.n, total.ids, total.dec)
	if total.ids+total.dec > 0 {
		return fmt.Errorf("%d id mismatches, %d decode mismatches", total.ids, total.dec)
	}
	return nil
}

// sample writes the golden file: every tricky string, every in-context title whose tokens
// differ from the standalone ones, and an evenly spaced share of each other category.
func sample(tokPath, ref, out string) error {
	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return err
	}
	recs, err := readRecords(ref)
	if err != nil {
		return err
	}
	byCat := map[string][]record{}
	var order []string
	for _, r := range recs {
		if _, ok := byCat[r.Cat]; !ok {
			order = append(order, r.Cat)
		}
		byCat[r.Cat] = append(byCat[r.Cat], r)
	}
	want := func(cat string) int {
		switch {
		case strings.HasPrefix(cat, "tricky"):
			return 1 << 30
		case cat == "random":
			return 1000
		case strings.HasPrefix(cat, "title/"):
			return 800
		case strings.HasPrefix(cat, "incontext/"):
			return 300
		default:
			return 50
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	enc := json.NewEncoder(gz)
	enc.SetEscapeHTML(false)
	n := 0
	for _, cat := range order {
		rs := byCat[cat]
		k := min(want(cat), len(rs))
		step := float64(len(rs)) / float64(k)
		for i, r := range rs {
			pick := int(float64(i)/step) != int(float64(i+1)/step) || k == len(rs)
			if strings.HasPrefix(cat, "incontext/") {
				title := strings.TrimPrefix(r.Text, tokenize.ResponseSeparator)
				std := tok.Encode(title)
				if !slices.Equal(std, r.IDs[3:]) {
					pick = true
				}
			}
			if pick {
				enc.Encode(r)
				n++
			}
		}
	}
	if err := gz.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "tokcheck: %d of %d records in %s\n", n, len(recs), out)
	return f.Close()
}

func incontext(tokPath, data string) error {
	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return err
	}
	fmt.Printf("%-10s %8s %8s %14s\n", "dataset", "items", "titles", "in-context diff")
	for _, ds := range datasets {
		cat, err := tokenize.ReadCatalogue(filepath.Join(data, ds, tokenize.CatalogueFile))
		if err != nil {
			return err
		}
		c, err := tokenize.NewItemSet(tok, cat)
		if err != nil {
			return err
		}
		diffs := c.InContextDiffs()
		fmt.Printf("%-10s %8d %8d %14d\n", ds, len(cat.IDs), len(c.Titles()), len(diffs))
		for i, d := range diffs {
			if i == 3 {
				break
			}
			fmt.Printf("    %q: standalone %v, in context %v\n", d.Title, d.Standalone, d.InContext)
		}
	}
	return nil
}
