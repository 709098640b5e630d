package tokenize

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"github.com/bearrec/bear/internal/testdeps"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	sugar "github.com/sugarme/tokenizer"
)

var (
	loadOnce sync.Once
	loaded   *Tokenizer
	loadErr  error
)

// llama3 returns the shared Llama-3.2 tokenizer (read-only: tests that add tokens load their own).
func llama3(t testing.TB) *Tokenizer {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = Load(testdeps.TokenizerPath()) })
	if loadErr != nil {
		t.Fatalf("Llama-3.2 tokenizer.json is missing or unreadable (run `make deps`): %v", loadErr)
	}
	return loaded
}

type goldenRecord struct {
	Cat     string `json:"cat"`
	Text    string `json:"text"`
	Special bool   `json:"special"`
	IDs     []int  `json:"ids"`
}

func readGolden(t testing.TB) []goldenRecord {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "tokenize", "golden.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bufio.NewReader(gz))
	var out []goldenRecord
	for {
		var r goldenRecord
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestGolden compares our ids with the ids of Hugging Face tokenizers (Rust) on the committed
// sample (make goldens-tokenize regenerates it; make tokcheck runs the full comparison), and
// checks that decoding gives the text back.
func TestGolden(t *testing.T) {
	tok := llama3(t)
	recs := readGolden(t)
	if len(recs) < 5000 {
		t.Fatalf("golden sample has %d records, want >= 5000", len(recs))
	}
	bad := 0
	for _, r := range recs {
		var got []int
		want := r.Text
		if r.Special {
			got = tok.EncodeSpecial(r.Text)
			want = BOSToken + r.Text
		} else {
			got = tok.Encode(r.Text)
		}
		if !slices.Equal(got, r.IDs) {
			bad++
			if bad <= 10 {
				t.Errorf("%s %q:\n got %v\nwant %v", r.Cat, r.Text, got, r.IDs)
			}
		}
		if dec, err := tok.Decode(r.IDs); err != nil || dec != want {
			bad++
			if bad <= 10 {
				t.Errorf("%s: Decode(%v) = %q, %v; want %q", r.Cat, r.IDs, dec, err, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d mismatches in %d records", bad, len(recs))
	}
}

func TestSpecialTokens(t *testing.T) {
	tok, err := Load(testdeps.TokenizerPath())
	if err != nil {
		t.Fatalf("run `make deps`: %v", err)
	}
	if tok.BOS() != 128000 || tok.EOS() != 128001 || tok.Pad() != -1 || tok.VocabSize() != 128256 {
		t.Fatalf("BOS %d EOS %d pad %d size %d", tok.BOS(), tok.EOS(), tok.Pad(), tok.VocabSize())
	}
	if got := tok.PostProcessorPrefix(); !slices.Equal(got, []int{128000}) {
		t.Errorf("post-processor prefix %v", got)
	}
	plainPad := tok.Encode("<pad>")
	if len(plainPad) < 2 {
		t.Errorf("before AddSpecial, <pad> is ordinary text: %v", plainPad)
	}
	if id := tok.AddSpecial(PadToken); id != 128256 || tok.Pad() != 128256 || tok.VocabSize() != 128257 {
		t.Fatalf("AddSpecial(<pad>) = %d, Pad %d, size %d", id, tok.Pad(), tok.VocabSize())
	}
	if id := tok.AddSpecial(PadToken); id != 128256 {
		t.Errorf("second AddSpecial = %d", id)
	}
	cases := []struct {
		text string
		ids  []int
	}{
		{"<pad>", []int{128256}},
		{"a<pad><|end_of_text|>", []int{64, 128256, 128001}},
		{"### Response:\n", []int{14711, 6075, 512}},
		{"<|begin_of_text|><|begin_of_text|>", []int{128000, 128000}},
	}
	for _, c := range cases {
		if got := tok.Encode(c.text); !slices.Equal(got, c.ids) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.ids)
		}
		if got, _ := tok.Decode(c.ids); got != c.text {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.text)
		}
	}
	if got := tok.EncodeSpecial("hi"); !slices.Equal(got, []int{128000, 6151}) {
		t.Errorf("EncodeSpecial(hi) = %v", got)
	}
	if _, err := tok.Decode([]int{200000}); err == nil {
		t.Error("Decode of an out-of-range id: no error")
	}
}

func TestDecodeLossy(t *testing.T) {
	tok := llama3(t)
	ids := tok.Encode("😀")
	if len(ids) < 2 {
		t.Fatalf("want an emoji of several tokens, got %v", ids)
	}
	// A partial UTF-8 sequence becomes one U+FFFD per maximal invalid subsequence.
	got, _ := tok.Decode(ids[:len(ids)-1])
	if !strings.HasSuffix(got, "\uFFFD") || strings.Count(got, "\uFFFD") != 1 {
		t.Errorf("Decode of a truncated emoji = %q", got)
	}
	for _, c := range []struct{ in, want string }{
		{"\xf0\x9f\x98", "\uFFFD"}, {"a\xffb", "a\uFFFDb"}, {"\xe0\x80", "\uFFFD\uFFFD"}, {"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
	} {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSplitLlama3 checks the pre-tokenizer alternative by alternative.
func TestSplitLlama3(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"don't DON'T", []string{"don", "'t", " DON", "'T"}},
		{"'sup", []string{"'s", "up"}},
		{"12345", []string{"123", "45"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a   ", []string{"a", "   "}},
		{"a \n\n b", []string{"a", " \n\n", " b"}},
		{"x\t.y", []string{"x", "\t", ".y"}},
		{"x\t. y", []string{"x", "\t", ".", " y"}},
		{" ...\n\nx", []string{" ...\n\n", "x"}},
		{"### Response:\n\"T\"", []string{"###", " Response", ":\n", "\"T", "\""}},
		{"\"(1)\"", []string{"\"(", "1", ")\""}},
		{"é中文 😀😀", []string{"é中文", " 😀😀"}},
		{"\u00a0\u00a0x", []string{"\u00a0", "\u00a0x"}},
	}
	for _, c := range cases {
		var got []string
		for s := c.in; s != ""; {
			n := splitLlama3(s)
			got = append(got, s[:n])
			s = s[n:]
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Load(testdeps.TokenizerPath()); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTexts(b *testing.B, kinds ...string) []string {
	var out []string
	for _, r := range readGolden(b) {
		for _, k := range kinds {
			if strings.HasPrefix(r.Cat, k+"/") {
				out = append(out, r.Text)
			}
		}
	}
	return out
}

func benchEncode(b *testing.B, texts []string, unit string) {
	enc := llama3(b).NewEncoder()
	var ids []int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range texts {
			ids = enc.Append(ids[:0], s)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), unit+"/s")
}

// BenchmarkEncodeTitles: the golden sample's `"TITLE"` texts, one goroutine, through an
// Encoder (scratch reused).
func BenchmarkEncodeTitles(b *testing.B) { benchEncode(b, benchTexts(b, "title"), "titles") }

// BenchmarkEncodePrompts: the golden sample's training and inference prompts, one goroutine.
func BenchmarkEncodePrompts(b *testing.B) {
	benchEncode(b, benchTexts(b, "train", "infer"), "prompts")
}

// BenchmarkEncodeTitlesAPI is BenchmarkEncodeTitles through the public Encode (allocating).
func BenchmarkEncodeTitlesAPI(b *testing.B) {
	tok := llama3(b)
	texts := benchTexts(b, "title")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range texts {
			tok.Encode(s)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "titles/s")
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	_, err := Load(missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	cfg, err := sugar.ConfigFromFile(testdeps.TokenizerPath())
	if err != nil {
		t.Fatalf("run `make deps`: %v", err)
	}
	pre := cfg.PreTokenizer
	cfg.PreTokenizer = map[string]interface{}{"type": "ByteLevel"}
	if _, err := fromConfig(cfg); err == nil {
		t.Error("GPT-2 pre-tokenizer accepted")
	}
	cfg.PreTokenizer = pre
	cfg.Normalizer = map[string]interface{}{"type": "NFC"}
	if _, err := fromConfig(cfg); err == nil {
		t.Error("normalizer accepted")
	}
	cfg.Normalizer = nil
	if _, err := fromConfig(cfg); err != nil {
		t.Errorf("restored config: %v", err)
	}
}
