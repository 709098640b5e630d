package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sugarme/tokenizer/pretokenizer"
)

// miniTokenizerJSON is a small tokenizer.json with Llama-3's pipeline (the Split pattern,
// ByteLevel pre-tokenizer and decoder, BOS template): the 256 byte tokens, a few merges, and
// BOS and EOS as added tokens. Small enough for the fuzzer to mutate.
func miniTokenizerJSON(t testing.TB) []byte {
	t.Helper()
	char := map[byte]string{}
	for c, b := range pretokenizer.CharBytes {
		char[b] = c
	}
	spell := func(raw string) string {
		var b strings.Builder
		for i := 0; i < len(raw); i++ {
			b.WriteString(char[raw[i]])
		}
		return b.String()
	}
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[spell(string([]byte{byte(b)}))] = b
	}
	var merges []string
	for _, m := range [][2]string{{" ", "t"}, {"h", "e"}, {" t", "he"}, {"a", "a"}, {"aa", "aa"}, {"!", "!"}, {" ", " "}, {"  ", "  "}} {
		merges = append(merges, spell(m[0])+" "+spell(m[1]))
		vocab[spell(m[0]+m[1])] = len(vocab)
	}
	bos, eos := len(vocab), len(vocab)+1
	added := func(id int, content string) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": []any{added(bos, BOSToken), added(eos, EOSToken)},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": BOSToken, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{BOSToken: map[string]any{"id": BOSToken, "ids": []int{bos}, "tokens": []string{BOSToken}}},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
			"vocab": vocab, "merges": merges},
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// malformedTokenizers are edits of miniTokenizerJSON that must be refused with an error
// containing want. sugarme panicked on the type errors (it type-asserts unchecked); the id
// errors sized the id table by the largest id, or made decoding ambiguous.
var malformedTokenizers = []struct {
	name, want string
	edit       func(doc map[string]any)
}{
	{"vocab not an object", "model: malformed", func(d map[string]any) { sub(d, "model")["vocab"] = 7 }},
	{"merges not a list", "model: malformed", func(d map[string]any) { sub(d, "model")["merges"] = "a b" }},
	{"merge not a string", "model", func(d map[string]any) { sub(d, "model")["merges"] = []any{7} }},
	{"unk_token a number", "model: malformed", func(d map[string]any) { sub(d, "model")["unk_token"] = 3 }},
	{"template not a list", "post-processor", func(d map[string]any) { sub(d, "post_processor")["single"] = 5 }},
	{"special_tokens a list", "post-processor", func(d map[string]any) { sub(d, "post_processor")["special_tokens"] = []any{} }},
	{"decoder option a string", "decoder", func(d map[string]any) { sub(d, "decoder")["add_prefix_space"] = "yes" }},
	{"huge vocabulary id", "id 1000000000000", func(d map[string]any) { sub(d, "model", "vocab")["Ġthe"] = 1e12 }},
	{"negative vocabulary id", "id -1", func(d map[string]any) { sub(d, "model", "vocab")["Ġthe"] = -1 }},
	{"shared vocabulary id", "share id 0", func(d map[string]any) { sub(d, "model", "vocab")["Ġthe"] = 0 }},
	{"huge added id", "id 4000000000", func(d map[string]any) { d["added_tokens"].([]any)[0].(map[string]any)["id"] = 4e9 }},
	{"added id of a byte", "which the vocabulary gives", func(d map[string]any) { d["added_tokens"].([]any)[0].(map[string]any)["id"] = 65 }},
	{"added ids shared", "share id", func(d map[string]any) {
		d["added_tokens"].([]any)[1].(map[string]any)["id"] = d["added_tokens"].([]any)[0].(map[string]any)["id"]
	}},
	{"template id out of range", "template id", func(d map[string]any) {
		sub(d, "post_processor", "special_tokens", BOSToken)["ids"] = []any{1e6}
	}},
	{"null", "JSON null", nil},
}

// sub walks nested JSON objects.
func sub(doc map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		doc = doc[k].(map[string]any)
	}
	return doc
}

// mutateTokenizerJSON applies edit to a decoded copy of data (nil: the JSON null).
func mutateTokenizerJSON(t testing.TB, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	if edit == nil {
		return []byte("null")
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoadMalformed: malformed tokenizer files are errors naming the fault, not panics, and
// the intact miniature loads and merges as its merges say.
func TestLoadMalformed(t *testing.T) {
	mini := miniTokenizerJSON(t)
	tok, err := parseTokenizer(mini)
	if err != nil {
		t.Fatalf("miniature tokenizer: %v", err)
	}
	if ids := tok.Encode(" the aaaa!!"); !slices.Equal(ids, []int{258, 32, 260, 261}) {
		t.Errorf("miniature tokenizer: ids %v, want [258 32 260 261] (\" the\", \" \", \"aaaa\", \"!!\")", ids)
	}
	for _, c := range malformedTokenizers {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseTokenizer(mutateTokenizerJSON(t, mini, c.edit))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// fuzzTexts are encoded by every tokenizer the fuzzer manages to build.
var fuzzTexts = []string{"", "the aaaa!!!  x", "<|begin_of_text|>he\n\n 12345 é🙂", "\xff\xfe'LL"}

// FuzzLoadTokenizer: any bytes give an error or a tokenizer that encodes without panicking,
// into ids it can decode, and decodes its ids back to the (lossy UTF-8 of the) text.
func FuzzLoadTokenizer(f *testing.F) {
	mini := miniTokenizerJSON(f)
	f.Add(mini)
	f.Add(mini[:len(mini)/2])
	f.Add([]byte("null"))
	f.Add([]byte("{}"))
	for _, c := range malformedTokenizers {
		f.Add(mutateTokenizerJSON(f, mini, c.edit))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parseTokenizer(data)
		if err != nil {
			return
		}
		checkEncodeDecode(t, tok, fuzzTexts...)
	})
}

// checkEncodeDecode asserts what every text must satisfy: ids in range, Decode(Encode(s)) is
// s with invalid UTF-8 replaced (the tokenizer is byte-level), EncodeSpecial is the template
// followed by Encode, and the allocation-free Encoder agrees with Encode.
func checkEncodeDecode(t *testing.T, tok *Tokenizer, texts ...string) {
	t.Helper()
	enc := tok.NewEncoder()
	for _, s := range texts {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q): id %d out of [0, %d)", s, id, tok.VocabSize())
			}
		}
		got, err := tok.Decode(ids)
		if want := lossyUTF8([]byte(s)); err != nil || got != want {
			t.Fatalf("Decode(Encode(%q)) = %q, %v; want %q", s, got, err, want)
		}
		if sp := tok.EncodeSpecial(s); !slices.Equal(sp, slices.Concat(tok.PostProcessorPrefix(), ids)) {
			t.Fatalf("EncodeSpecial(%q) = %v, want the template then %v", s, sp, ids)
		}
		if again := enc.Append(nil, s); !slices.Equal(again, ids) {
			t.Fatalf("Encoder(%q) = %v, Encode %v", s, again, ids)
		}
	}
}

// FuzzEncode: arbitrary text through the Llama-3.2 tokenizer (see checkEncodeDecode); valid
// UTF-8 comes back exactly.
func FuzzEncode(f *testing.F) {
	for _, s := range append(slices.Clone(fuzzTexts), "Carcassonne Basic Game", "### Response:\n\"Café  Crème — 中文 😀\"",
		"  \r\n\t x", "'s'T'Re 1234567 ſ", "<|end_of_text|><|eot_id|><pad>", strings.Repeat("a", 300), strings.Repeat("!", 100)) {
		f.Add(s)
	}
	tok := llama3(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkEncodeDecode(t, tok, s)
		if utf8.ValidString(s) {
			if got, _ := tok.Decode(tok.Encode(s)); got != s {
				t.Fatalf("valid UTF-8 %q decodes to %q", s, got)
			}
		}
	})
}

// FuzzParseIDList: parseIDList accepts a bracketed, comma-separated list of integers and
// nothing else, and what it returns formats back to an equal list.
func FuzzParseIDList(f *testing.F) {
	for _, s := range []string{"[1, 2, 3]", "[7,1]", "[]", " [ 5 ] ", "[1,,2]", "[1, 2,]", "1, 2", "[99999999999999999999]", "[-3]", "[0x10]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseIDList(s)
		if err != nil {
			return
		}
		trimmed := strings.TrimSpace(s)
		if !strings.HasPrefix(trimmed, "[") || !strings.HasSuffix(trimmed, "]") {
			t.Fatalf("%q accepted without brackets", s)
		}
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.Itoa(id)
		}
		again, err := parseIDList("[" + strings.Join(parts, ", ") + "]")
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%q -> %v, formatted back -> %v, %v", s, ids, again, err)
		}
	})
}

// FuzzReadCatalogue: an error, or a catalogue whose IDs are sorted, distinct and exactly the
// keys of Titles.
func FuzzReadCatalogue(f *testing.F) {
	real, err := os.ReadFile(filepath.Join(mini, "id2name4Rec.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(real), `{}`, `{"1": "a", "1": "b"}`, `{"01": "a"}`, `{"1": null}`, `[]`, `{"1": "a"} x`, "{\"1\": \"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "id2name4Rec.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cat, err := ReadCatalogue(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(cat.IDs) != len(cat.Titles) || !slices.IsSorted(cat.IDs) || len(slices.Compact(slices.Clone(cat.IDs))) != len(cat.IDs) {
			t.Fatalf("ids %v for %d titles", cat.IDs, len(cat.Titles))
		}
		for _, id := range cat.IDs {
			if _, ok := cat.Titles[id]; !ok || id < 0 {
				t.Fatalf("id %d without a title", id)
			}
		}
	})
}

// FuzzReadSplit: an error naming the file, or rows whose targets and histories are catalogue
// items with their titles, at most MaxHistory long.
func FuzzReadSplit(f *testing.F) {
	for _, name := range []string{"train_10000.csv", "test_5000.csv"} {
		real, err := os.ReadFile(filepath.Join(mini, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(real)
	}
	for _, s := range []string{"user_id,item_ids\n", "user_id,item_ids,timestamp\n1,\"[1]\",x\n", "user_id,item_ids\n1\n",
		"user_id,item_ids,item_ids\n1,[1],[2]\n", "user_id,item_ids\n1,\"[1,\n2]\"\n2,\"[3]\"\n", "\"user_id\nx"} {
		f.Add([]byte(s))
	}
	cat := &Catalogue{IDs: []int{1, 2, 3, 4, 5, 7, 8}, Titles: map[int]string{1: "a", 2: "b", 3: "c", 4: "d", 5: "b", 7: "e", 8: "f"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "train.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rows, err := ReadSplit(path, cat)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, r := range rows {
			if r.Target != cat.Titles[r.TargetID] || len(r.HistoryIDs) > MaxHistory || len(r.History) != len(r.HistoryIDs) || r.DroppedIDs < 0 {
				t.Fatalf("row %+v", r)
			}
			for i, id := range r.HistoryIDs {
				if title, ok := cat.Titles[id]; !ok || r.History[i] != title {
					t.Fatalf("row %+v: history id %d", r, id)
				}
			}
		}
	})
}
