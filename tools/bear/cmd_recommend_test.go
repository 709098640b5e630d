package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/tokenize"
)

// officeData is the committed Office sample.
var officeData = filepath.Join("..", "..", "testdata", "office")

// recOutput is one line of bear recommend's --out.
type recOutput struct {
	User  json.RawMessage `json:"user"`
	Items []struct {
		Rank    int     `json:"rank"`
		ItemID  *int    `json:"item_id"`
		ItemIDs []int   `json:"item_ids"`
		Title   string  `json:"title"`
		Score   float64 `json:"score"`
	} `json:"items"`
}

// readRecOutput reads an --out file strictly (no unknown keys) and checks that every item has
// the keys item_id (null or not) and item_ids.
func readRecOutput(t *testing.T, path string) []recOutput {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []recOutput
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var r recOutput
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		var raw struct {
			Items []map[string]json.RawMessage `json:"items"`
		}
		json.Unmarshal([]byte(line), &raw)
		for _, it := range raw.Items {
			if _, ok := it["item_id"]; !ok || it["item_ids"] == nil {
				t.Fatalf("%s:%d: an item lacks item_id or item_ids: %s", path, i+1, line)
			}
		}
		out = append(out, r)
	}
	return out
}

// writeLines writes JSON lines (each value marshalled) to path.
func writeLines(t *testing.T, path string, values ...any) {
	t.Helper()
	var b bytes.Buffer
	for _, v := range values {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(js, '\n'))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTrainedAdapter writes a random LoRA adapter on q_proj and v_proj of model (B not zero,
// so that it changes the scores) with a training record saying BEAR, which makes bear eval and
// bear recommend choose --constrain before.
func writeTrainedAdapter(t *testing.T, model, dir string) string {
	t.Helper()
	cfg, err := hf.ReadConfig(model)
	if err != nil {
		t.Fatal(err)
	}
	a := &peft.Adapter{Spec: llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}, Weights: map[string][]float32{}}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, in := range a.Spec.Inputs(cfg) {
		w := make([]float32, in.Rows*in.Cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
		}
		a.Weights[in.Name] = w
	}
	if err := peft.WriteAdapter(dir, a, cfg, model); err != nil {
		t.Fatal(err)
	}
	if err := evaluate.WriteTrainingRecord(dir, evaluate.TrainingRecord{Loss: "bear"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// evalPrediction is the part of a predictions.json record the comparison reads.
type evalPrediction struct {
	Predict      []string  `json:"predict"`
	Scores       []float64 `json:"scores"`
	UserID       int       `json:"bear_user_id"`
	PredictItems [][]int   `json:"bear_predict_items"`
}

// sameAsEval checks recommend's lines against bear eval's predictions of the same users: the
// same item ids and scores in the same order (the first top of them), the catalogue's title
// for an item (predict is its quoted form after transformers' clean-up, which only removes
// spaces) and the decoded text of a beam cut by --max-new-tokens (item_id null).
func sameAsEval(t *testing.T, what string, cat *tokenize.Catalogue, got []recOutput, preds []evalPrediction, top int) {
	t.Helper()
	if len(got) != len(preds) {
		t.Fatalf("%s: %d lines for %d users", what, len(got), len(preds))
	}
	noSpace := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	for i, p := range preds {
		if len(got[i].Items) != top {
			t.Errorf("%s: user %d: %d items, want %d", what, p.UserID, len(got[i].Items), top)
			continue
		}
		for j, it := range got[i].Items {
			if it.Rank != j+1 || !slices.Equal(it.ItemIDs, p.PredictItems[j]) || it.Score != p.Scores[j] {
				t.Errorf("%s: user %d rank %d: %+v, bear eval %v %v", what, p.UserID, j+1, it, p.PredictItems[j], p.Scores[j])
				continue
			}
			switch {
			case len(it.ItemIDs) == 0:
				if it.ItemID != nil || `"`+it.Title != p.Predict[j] {
					t.Errorf("%s: user %d rank %d: unfinished %+v, bear eval's predict %q", what, p.UserID, j+1, it, p.Predict[j])
				}
			case it.ItemID == nil || *it.ItemID != it.ItemIDs[0] || it.Title != cat.Titles[it.ItemIDs[0]] ||
				noSpace(tokenize.Quote(it.Title)) != noSpace(p.Predict[j]):
				t.Errorf("%s: user %d rank %d: %+v, bear eval's predict %q", what, p.UserID, j+1, it, p.Predict[j])
			}
		}
	}
}

// TestRecommendMatchesEval: for the histories of the first Office test users, given as item
// ids and as titles, bear recommend returns exactly the ranked items, titles and scores that
// bear eval writes to predictions.json (a random tiny model with a random adapter whose
// training record picks --constrain before for both), users echoed verbatim; --top 3 keeps the
// first three; with --max-new-tokens 4 every beam is cut and comes back with item_id null, as
// bear eval counts it.
func TestRecommendMatchesEval(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	model := writeTinyModel(t, filepath.Join(dir, "tiny"))
	adapter := writeTrainedAdapter(t, model, filepath.Join(dir, "adapter"))
	sp, err := tokenize.LoadSplit(officeData, "", "test", tok)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--model", model, "--adapter", adapter, "--tokenizer", tok, "--data", officeData, "--cache-dir", filepath.Join(dir, "cache"),
		"--batch", "4", "--no-progress"}
	for _, c := range []struct {
		name  string
		users int
		extra []string
	}{{"default", 12, nil}, {"max-new-tokens 4", 4, []string{"--max-new-tokens", "4"}}} {
		evalOut := filepath.Join(dir, "eval-"+c.name)
		var so, se bytes.Buffer
		if err := evalMain(append(append([]string{"--limit", fmt.Sprint(c.users), "--out", evalOut}, common...), c.extra...), &so, &se); err != nil {
			t.Fatalf("%s: bear eval: %v\n%s", c.name, err, se.String())
		}
		if !strings.Contains(se.String(), "--constrain before") {
			t.Errorf("%s: bear eval did not take --constrain before from the training record:\n%s", c.name, se.String())
		}
		var preds []evalPrediction
		readJSONFile(t, filepath.Join(evalOut, "predictions.json"), &preds)
		var byIDs, byTitles []any
		for i, r := range sp.Rows[:c.users] {
			byIDs = append(byIDs, map[string]any{"user": map[string]any{"id": r.UserID, "row": i, "note": "<&>"}, "item_ids": r.HistoryIDs})
			byTitles = append(byTitles, map[string]any{"user": fmt.Sprintf("u%d", r.UserID), "titles": r.History})
		}
		for _, in := range []struct {
			name  string
			lines []any
			top   int
		}{{"ids", byIDs, 10}, {"titles", byTitles, 10}, {"ids-top3", byIDs, 3}} {
			input := filepath.Join(dir, c.name+"-"+in.name+".jsonl")
			writeLines(t, input, in.lines...)
			out := filepath.Join(dir, c.name+"-"+in.name+".out.jsonl")
			args := append(append([]string{"--input", input, "--out", out, "--top", fmt.Sprint(in.top)}, common...), c.extra...)
			var so, se bytes.Buffer
			if err := recommendMain(args, &so, &se); err != nil {
				t.Fatalf("%s %s: %v\n%s", c.name, in.name, shown("recommend", err), se.String())
			}
			if !strings.Contains(se.String(), "--constrain before") || so.Len() != 0 {
				t.Errorf("%s %s: stdout %q, stderr:\n%s", c.name, in.name, so.String(), se.String())
			}
			got := readRecOutput(t, out)
			sameAsEval(t, c.name+" "+in.name, sp.Catalogue, got, preds, in.top)
			for i, g := range got {
				want, _ := json.Marshal(in.lines[i].(map[string]any)["user"]) // as the input line holds it
				if string(g.User) != string(want) {
					t.Errorf("%s %s: line %d: user %s, input %s", c.name, in.name, i+1, g.User, want)
				}
			}
			cut := 0
			for _, g := range got {
				for _, it := range g.Items {
					if it.ItemID == nil {
						cut++
					}
				}
			}
			if (cut > 0) != (c.name == "max-new-tokens 4") {
				t.Errorf("%s %s: %d beams cut by --max-new-tokens", c.name, in.name, cut)
			}
		}
	}
}

// recFixture is a random tiny model and a small Office-named catalogue: three items, two
// titles, "Red Pen" given to items 1 and 3.
type recFixture struct {
	dir, tok, model, small string
	common                 []string
}

func newRecFixture(t *testing.T) recFixture {
	f := recFixture{dir: t.TempDir(), tok: testdeps.Tokenizer(t)}
	f.model = writeTinyModel(t, filepath.Join(f.dir, "tiny"))
	f.small = filepath.Join(f.dir, "Office")
	os.MkdirAll(f.small, 0o755)
	os.WriteFile(filepath.Join(f.small, tokenize.CatalogueFile), []byte(`{"1": "Red Pen", "2": "Paper Clips", "3": "Red Pen"}`), 0o644)
	f.common = []string{"--model", f.model, "--tokenizer", f.tok, "--cache-dir", filepath.Join(f.dir, "cache"), "--no-progress"}
	return f
}

func (f recFixture) run(args ...string) (string, string, error) {
	var so, se bytes.Buffer
	err := recommendMain(append(slices.Clone(f.common), args...), &so, &se)
	return so.String(), se.String(), shown("recommend", err)
}

// TestRecommendHistoryTable: --history prints one history's table (rank, item ids, score,
// title) on stdout, the same list --input/--out writes for it; a duplicated title shows all its
// ids; --top cuts the table.
func TestRecommendHistoryTable(t *testing.T) {
	f := newRecFixture(t)
	stdout, stderr, err := f.run("--data", f.small, "--beams", "2", "--history", "Paper Clips", "--history", "Red Pen")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 || strings.Fields(lines[0])[0] != "rank" || !strings.HasSuffix(lines[0], "  title") {
		t.Fatalf("table:\n%s", stdout)
	}
	input := filepath.Join(f.dir, "in.jsonl")
	out := filepath.Join(f.dir, "out.jsonl")
	// user is echoed verbatim but compact: no HTML escaping, a number beyond float64 kept
	os.WriteFile(input, []byte(`{"user": {"n": 12345678901234567890, "s": "<&>"}, "titles": ["Paper Clips", "Red Pen"]}`+"\n"), 0o644)
	if _, stderr, err := f.run("--data", f.small, "--beams", "2", "--input", input, "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	got := readRecOutput(t, out)
	if u := string(got[0].User); u != `{"n":12345678901234567890,"s":"<&>"}` {
		t.Errorf("user echoed as %s", u)
	}
	seen := map[string]bool{}
	for j, it := range got[0].Items {
		ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(it.ItemIDs), " ", ","), "[]")
		want := []string{fmt.Sprint(j + 1), ids, fmt.Sprintf("%.6f", it.Score), it.Title}
		if fields := strings.Fields(lines[j+1]); !reflect.DeepEqual(fields[:3], want[:3]) || strings.Join(fields[3:], " ") != it.Title {
			t.Errorf("table row %q, want %q", lines[j+1], want)
		}
		seen[it.Title] = true
		if it.Title == "Red Pen" && (!slices.Equal(it.ItemIDs, []int{1, 3}) || *it.ItemID != 1) {
			t.Errorf("Red Pen: item_id %d, item_ids %v; want 1 and [1 3]", *it.ItemID, it.ItemIDs)
		}
	}
	if !seen["Red Pen"] || !seen["Paper Clips"] {
		t.Errorf("2 beams over 2 titles did not return both: %+v", got[0].Items)
	}
	stdout, _, err = f.run("--data", f.small, "--beams", "2", "--top", "1", "--history", "Paper Clips")
	if n := strings.Count(stdout, "\n"); err != nil || n != 2 {
		t.Errorf("--top 1: %v, %d lines:\n%s", err, n, stdout)
	}
}

// TestRecommendBadInput: every kind of bad --input line is refused naming the file and line
// (blank lines count), before the model is loaded (the model folder does not exist), and no
// --out file is left.
func TestRecommendBadInput(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	cat, err := tokenize.ReadCatalogue(filepath.Join(officeData, tokenize.CatalogueFile))
	if err != nil {
		t.Fatal(err)
	}
	cleaned := strings.Replace(cat.Titles[124], " ,", ",", 1) // as decoded predictions show item 124
	good := `{"user": 1, "item_ids": [1, 2]}`
	for _, c := range []struct {
		name, line, want string
	}{
		{"bad JSON", `{"user": 1, "item_ids": [1,}`, "invalid JSON"},
		{"not an object", `[1, 2]`, "want a JSON object"},
		{"data after", good + ` {}`, "data after the object"},
		{"unknown id", `{"user": 1, "item_ids": [1, 99999999]}`, "item id 99999999 (item 2 of 2) is not in the catalogue"},
		{"unknown title", `{"user": 1, "titles": ["No Such Pen"]}`, `title "No Such Pen" (item 1 of 1) is not in the catalogue`},
		{"cleaned-up title", fmt.Sprintf(`{"user": 1, "titles": [%q]}`, cleaned), `after transformers' decode clean-up: give the catalogue's spelling`},
		{"title in lower case", fmt.Sprintf(`{"user": 1, "titles": [%q]}`, strings.ToLower(cat.Titles[1])), "differs only in case"},
		{"both keys", `{"user": 1, "item_ids": [1], "titles": ["HP 12C Financial Calculator"]}`, `both "item_ids" and "titles"`},
		{"neither key", `{"user": 1}`, `neither "item_ids" nor "titles"`},
		{"empty history", `{"user": 1, "item_ids": []}`, `empty history: "item_ids" is an empty list`},
		{"empty titles", `{"user": 1, "titles": []}`, `empty history: "titles" is an empty list`},
		{"null list", `{"user": 1, "item_ids": null}`, `"item_ids" is null, want a list`},
		{"unknown key", `{"user": 1, "item_ids": [1], "items": [2]}`, `unknown key "items"`},
		{"repeated key", `{"user": 1, "item_ids": [1], "item_ids": [2]}`, `key "item_ids" appears twice`},
		{"no user", `{"item_ids": [1]}`, `no "user" key`},
		{"null id", `{"user": 1, "item_ids": [1, null]}`, "item_ids[1] is null, want an item id"},
		{"string id", `{"user": 1, "item_ids": ["1"]}`, `item_ids[0] is "1", want an item id`},
		{"fractional id", `{"user": 1, "item_ids": [1.5]}`, "item_ids[0] is 1.5, want an item id"},
		{"number title", `{"user": 1, "titles": [7]}`, "titles[0] is 7, want a title"},
		{"invalid UTF-8", "{\"user\": \"\xff\", \"item_ids\": [1]}", "invalid UTF-8"},
	} {
		input := filepath.Join(dir, "in.jsonl")
		out := filepath.Join(dir, "out.jsonl")
		os.WriteFile(input, []byte(good+"\n\n"+c.line+"\n"+good+"\n"), 0o644)
		var so, se bytes.Buffer
		err := recommendMain([]string{"--model", filepath.Join(dir, "no-model"), "--tokenizer", tok, "--data", officeData,
			"--input", input, "--out", out, "--no-progress"}, &so, &se)
		if want := "--input " + input + ":3: "; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q and %q", c.name, err, want, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: --out exists after the refusal (%v)", c.name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in the output folder: %v", entries)
	}
	empty := filepath.Join(dir, "in.jsonl")
	os.WriteFile(empty, []byte("\n  \n"), 0o644)
	if err := recommendMain([]string{"--model", "m", "--data", officeData, "--tokenizer", tok, "--input", empty, "--out", filepath.Join(dir, "o")}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "holds no histories") {
		t.Errorf("input of blank lines: %v", err)
	}
}

// TestRecommendFlags: every bad flag is refused naming it, before any work (the missing model
// folder is never read or created), without a panic and without an --out file.
func TestRecommendFlags(t *testing.T) {
	f := newRecFixture(t)
	input := filepath.Join(f.dir, "in.jsonl")
	os.WriteFile(input, []byte(`{"user": 1, "titles": ["Red Pen"]}`+"\n"), 0o644)
	existing := filepath.Join(f.dir, "existing.jsonl")
	os.WriteFile(existing, []byte("keep\n"), 0o644)
	out := filepath.Join(f.dir, "out.jsonl")
	missing := filepath.Join(f.dir, "missing")
	base := []string{"--model", missing, "--tokenizer", f.tok, "--data", f.small, "--input", input, "--out", out}
	with := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--data", f.small, "--history", "Red Pen"}, "--model and --data are required"},
		{[]string{"--model", missing, "--history", "Red Pen"}, "--model and --data are required"},
		{[]string{"--model", missing, "--data", f.small}, "give --input and --out, or --history"},
		{[]string{"--model", missing, "--data", f.small, "--input", input}, "give --input and --out, or --history"},
		{[]string{"--model", missing, "--data", f.small, "--out", out}, "give --input and --out, or --history"},
		{with("--history", "Red Pen"), "--history prints its table: it takes no --input, --out or --force"},
		{[]string{"--model", missing, "--data", f.small, "--history", "Red Pen", "--out", out}, "takes no --input, --out"},
		{[]string{"--model", missing, "--data", f.small, "--history", "Red Pen", "--force"}, "takes no --input, --out or --force"},
		{with("--beams", "0"), "--beams 0: want a positive count"},
		{with("--batch", "-1"), "--batch -1: want a positive count"},
		{with("--max-new-tokens", "-1"), "--max-new-tokens -1"},
		{with("--max-rows", "-2"), "--max-rows -2"},
		{with("--top", "0"), "--top 0: want 1 to --beams 10"},
		{with("--top", "11"), "--top 11: want 1 to --beams 10 (--beams does not follow --top: pass --beams 11 too"},
		{with("--top", "3", "--beams", "2"), "--top 3: want 1 to --beams 2"},
		{with("--constrain", "middle"), `--constrain "middle": want after or before`},
		{with("--threads", "-4"), "--threads -4"},
		{with("--device", "tpu"), "--device"},
		{with("stray"), "unexpected arguments"},
		{[]string{"--model", missing, "--data", f.small, "--input", missing, "--out", out}, "--input: stat " + missing},
		{[]string{"--model", missing, "--data", f.small, "--input", f.dir, "--out", out}, "--input " + f.dir + " is a folder"},
		{[]string{"--model", missing, "--data", f.small, "--input", input, "--out", input}, "--out " + input + " is the input " + input},
		{[]string{"--model", missing, "--data", f.small, "--input", input, "--out", filepath.Join(f.small, "o.jsonl")}, "lies inside the input " + f.small},
		{[]string{"--model", missing, "--data", f.small, "--input", input, "--out", existing}, "--out " + existing + " exists: pass --force"},
		{[]string{"--model", missing, "--data", f.small, "--input", input, "--out", filepath.Join(f.dir, "cache")}, "is a folder, want a file"},
		{[]string{"--model", missing, "--data", f.small, "--input", input, "--out", filepath.Join(f.dir, "nowhere", "o.jsonl")}, "the folder " + filepath.Join(f.dir, "nowhere") + " does not exist"},
		{with("--tokenizer", missing), "--tokenizer " + missing},
		{with("--dataset", "Garden"), `--dataset Garden: no prompt for dataset "Garden"`},
		{with("--beams", "3"), "--beams 3: 3 beams, but the catalogue"},
	}
	os.MkdirAll(filepath.Join(f.dir, "cache"), 0o755)
	for _, c := range cases {
		args := append([]string{"--no-progress"}, c.args...)
		if !slices.Contains(args, "--tokenizer") {
			args = append(args, "--tokenizer", f.tok)
		}
		err := runCommand(commands["recommend"], args)
		var ie *internalError
		switch {
		case errors.As(err, &ie):
			t.Errorf("%q: panic %v\n%s", c.args, ie.value, ie.stack)
		case err == nil || !strings.Contains(shown("recommend", err).Error(), c.want):
			t.Errorf("%q: error %v, want one containing %q", c.args, shown("recommend", err), c.want)
		}
	}
	for _, p := range []string{missing, out} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
	if data, _ := os.ReadFile(existing); string(data) != "keep\n" {
		t.Errorf("the existing --out file was changed: %q", data)
	}
	// --force replaces an existing file, in place of which the results are written whole.
	if _, stderr, err := f.run("--data", f.small, "--beams", "2", "--input", input, "--out", existing, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, stderr)
	}
	if got := readRecOutput(t, existing); len(got) != 1 || len(got[0].Items) != 2 {
		t.Errorf("--force: %+v", got)
	}
}

// TestRecommendInterrupted: SIGINT stops a running bear recommend (the test binary run as bear)
// with exit status 1 and a message saying nothing was written; no --out file, and no temporary
// file, is left.
func TestRecommendInterrupted(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	dir := t.TempDir()
	model := writeTinyModel(t, filepath.Join(dir, "tiny"))
	var lines []any
	for i := 0; i < 200; i++ {
		lines = append(lines, map[string]any{"user": i, "item_ids": []int{1 + i%50, 2 + i%50, 3 + i%50}})
	}
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, lines...)
	outDir := filepath.Join(dir, "out")
	os.MkdirAll(outDir, 0o755)
	out := filepath.Join(outDir, "rec.jsonl")
	cmd := exec.Command(os.Args[0], "recommend", "--model", model, "--tokenizer", tok, "--data", officeData, "--cache-dir", filepath.Join(dir, "cache"),
		"--batch", "1", "--input", input, "--out", out, "--no-progress")
	cmd.Env = append(os.Environ(), asBearEnv+"=1")
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	sc := bufio.NewScanner(stderrPipe)
	for sc.Scan() { // the first progress line comes once decoding starts, the interrupt handler installed
		stderr.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), " users (") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	t0 := time.Now()
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted: nothing written ("+out+" was not created)") {
		t.Fatalf("exit %v\n%s", err, stderr.String())
	}
	t.Logf("stopped %v after SIGINT", time.Since(t0).Round(time.Millisecond))
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("left in the output folder: %v", entries)
	}
}
