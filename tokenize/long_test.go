package tokenize

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// longCase is one case of testdata/tokenize/long.json, written by tools/reference/toklong.js
// from Hugging Face tokenizers (Rust): a long text given by its parts and the digest of its ids.
type longCase struct {
	Name   string     `json:"name"`
	Long   bool       `json:"long"`  // a 1 MB text: skipped under -short
	Bench  bool       `json:"bench"` // timed by BenchmarkEncodeLong and toklong.js bench
	Parts  []longPart `json:"parts"`
	Bytes  int        `json:"bytes"`
	Count  int        `json:"count"`
	Head   []int      `json:"head"`
	SHA256 string     `json:"sha256"`
}

// longPart is S repeated N times, or N code points drawn from Rand with xorshift32 from Seed.
type longPart struct {
	S    *string `json:"s"`
	Rand string  `json:"rand"`
	N    int     `json:"n"`
	Seed uint32  `json:"seed"`
}

func (c longCase) text() string {
	var b strings.Builder
	for _, p := range c.Parts {
		if p.S != nil {
			b.WriteString(strings.Repeat(*p.S, p.N))
			continue
		}
		alphabet := []rune(p.Rand)
		x := p.Seed
		for i := 0; i < p.N; i++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b.WriteRune(alphabet[x%uint32(len(alphabet))])
		}
	}
	return b.String()
}

func readLongCases(t testing.TB) []longCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "tokenize", "long.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Cases []longCase }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 20 {
		t.Fatalf("long.json has %d cases, want >= 20", len(doc.Cases))
	}
	return doc.Cases
}

func idsSHA256(ids []int) string {
	buf := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// TestEncodeLong compares our ids with Hugging Face's on long runs (100 kB; the 1 MB cases
// unless -short) of one character class, huge single words and mixed text. The quadratic BPE
// took 13 s on 100 kB of "a" alone; the whole table takes about a second now.
func TestEncodeLong(t *testing.T) {
	tok := llama3(t)
	for _, c := range readLongCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			if c.Long && testing.Short() {
				t.Skip("1 MB case skipped under -short")
			}
			text := c.text()
			if len(text) != c.Bytes {
				t.Fatalf("text has %d bytes, the reference %d: the case builder disagrees with toklong.js", len(text), c.Bytes)
			}
			ids := tok.Encode(text)
			if len(ids) != c.Count || !slices.Equal(ids[:min(len(ids), len(c.Head))], c.Head) || idsSHA256(ids) != c.SHA256 {
				t.Fatalf("%d ids starting %v, want %d starting %v (sha256 %s)", len(ids), ids[:min(len(ids), len(c.Head))], c.Count, c.Head, c.SHA256)
			}
			if got, err := tok.Decode(ids); err != nil || got != text {
				t.Errorf("decode does not give the text back (err %v)", err)
			}
		})
	}
}

// BenchmarkEncodeLong times one Encode of each 1 MB benchmark text of long.json (1 MB of "a",
// of spaces, of "!", a 1 MB random lowercase word, mixed text); `make tokbench-long` times the
// Rust library on the same texts.
func BenchmarkEncodeLong(b *testing.B) {
	tok := llama3(b)
	for _, c := range readLongCases(b) {
		if !c.Bench {
			continue
		}
		text := c.text()
		b.Run(c.Name, func(b *testing.B) {
			enc := tok.NewEncoder()
			var ids []int
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				ids = enc.Append(ids[:0], text)
			}
		})
	}
}

// TestMergeShortLong checks that the queue-based merge of long pre-tokens and the rescanning
// merge of short ones give the same ids on random words of every length around the threshold,
// from alphabets that merge a lot (one letter, two letters, digits, spaces) or little.
func TestMergeShortLong(t *testing.T) {
	tok := llama3(t)
	alphabets := []string{"a", "ab", "abcdefghijklmnopqrstuvwxyz", "eEtTaA", " ", " \n", "!?.", "0123456789", "é日🙂"}
	var w bpeWork
	x := uint32(12345)
	for _, alphabet := range alphabets {
		runes := []rune(alphabet)
		for n := 2; n <= 3*shortWord; n++ {
			var b strings.Builder
			for b.Len() < n {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				b.WriteRune(runes[x%uint32(len(runes))])
			}
			piece := b.String()
			short := tok.mergeShort(nil, piece, &w)
			long := tok.mergeLong(nil, piece, &w)
			if !slices.Equal(short, long) {
				t.Fatalf("%q: rescanning merge %v, queue merge %v", piece, short, long)
			}
		}
	}
}

// TestMergeQueue checks the 4-ary heap against sorting.
func TestMergeQueue(t *testing.T) {
	x := uint32(7)
	next := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for _, n := range []int{0, 1, 2, 3, 4, 5, 17, 100, 1000} {
		var q mergeQueue
		var want []mergeKey
		for i := 0; i < n; i++ {
			k := newMergeKey(int32(next()%50), int32(next()%1000))
			q = append(q, k)
			want = append(want, k)
		}
		q.init()
		for i := 0; i < n/2; i++ { // pushes onto the built heap
			k := newMergeKey(int32(next()%50), int32(next()%1000))
			q.push(k)
			want = append(want, k)
		}
		slices.Sort(want)
		for i, k := range want {
			if got := q.pop(); got != k {
				t.Fatalf("n=%d: pop %d = (%d, %d), want (%d, %d)", n, i, got.rank(), got.pos(), k.rank(), k.pos())
			}
		}
		if len(q) != 0 {
			t.Fatalf("n=%d: %d keys left", n, len(q))
		}
	}
}

// TestMatchSpecialTrie checks the trie match against the longest-content-first lookup over
// strings made of fragments of the special tokens.
func TestMatchSpecialTrie(t *testing.T) {
	tok := llama3(t)
	frags := []string{"<|", "|>", "begin_of_text", "end_of_text", "<|eot_id|>", "reserved_special_token_", "1", "25", "<", "x"}
	x := uint32(99)
	for k := 0; k < 20000; k++ {
		var b strings.Builder
		for j := 0; j < 6; j++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b.WriteString(frags[x%uint32(len(frags))])
		}
		s := b.String()
		want := 0
		for n := min(len(s), tok.maxSpecial); n > 0; n-- {
			if _, ok := tok.special[s[:n]]; ok {
				want = n
				break
			}
		}
		if got := tok.matchSpecial(s); got != want {
			t.Fatalf("matchSpecial(%q) = %d, want %d", s, got, want)
		}
	}
}
