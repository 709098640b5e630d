package ortrun

import (
	"github.com/bearrec/bear/onnx/hf"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/tokenize"
)

// randomTrie builds a catalogue of random titles over the vocabulary (prefix titles and
// duplicates included), each ending in EOS.
func randomTrie(t *testing.T, rng *rand.Rand, items, vocab, eos int) *tokenize.Trie {
	var seqs, ids [][]int
	for i := 0; i < items; i++ {
		var s []int
		switch {
		case i > 0 && i%7 == 0: // a prefix of an earlier title
			prev := seqs[rng.IntN(len(seqs))]
			s = append([]int(nil), prev[:max(1, len(prev)-2)]...)
			s[len(s)-1] = eos
		case i > 0 && i%11 == 0: // a duplicate title
			s = append([]int(nil), seqs[rng.IntN(len(seqs))]...)
		default:
			n := 1 + rng.IntN(6)
			for range n {
				s = append(s, 3+rng.IntN(vocab-3))
			}
			s = append(s, eos)
		}
		seqs = append(seqs, s)
		ids = append(ids, []int{i})
	}
	tr, err := tokenize.NewTrie(seqs, ids, eos)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestKVCacheMatchesFullRecompute: beam search with the KV-cache decoder returns the same
// hypotheses, with scores within 1e-4, as rerunning whole sequences, in both constraint modes,
// with a LoRA adapter, on left-padded prompts of different lengths.
func TestKVCacheMatchesFullRecompute(t *testing.T) {
	c := firstCase(t, "lora_q_v")
	dir := writeCase(t, c, "")
	cfg, _ := hf.ReadConfig(dir)
	ad, err := peft.ReadAdapter(filepath.Join("../../testdata/forward", c.LoRA.Dir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := ScorerOptions{Adapter: ad, Model: ModelOptions{CacheDir: t.TempDir(), SessionOptions: SessionOptions{Threads: 2}}}
	full, err := NewScorer(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	o.KVCache = true
	kv, err := NewScorer(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	trie := randomTrie(t, rng, 60, cfg.VocabSize, 2)
	prompts := [][]int{{1, 40, 41, 42}, {1, 7}, {1, 300, 301, 302, 303, 304, 305, 306}}
	for _, mode := range []decode.Mode{decode.AfterSoftmax, decode.BeforeSoftmax} {
		cfgB := decode.DefaultConfig()
		cfgB.Beams, cfgB.Return, cfgB.Mode = 5, 5, mode
		a, err := decode.Search(full, trie, prompts, cfgB)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decode.Search(kv, trie, prompts, cfgB)
		if err != nil {
			t.Fatal(err)
		}
		for u := range prompts {
			if len(a[u].Hyps) != len(b[u].Hyps) || len(a[u].Hyps) == 0 {
				t.Fatalf("%v user %d: %d hypotheses without cache, %d with", mode, u, len(a[u].Hyps), len(b[u].Hyps))
			}
			for h := range a[u].Hyps {
				x, y := a[u].Hyps[h], b[u].Hyps[h]
				if math.Abs(x.Score-y.Score) > 1e-4 || len(x.Tokens) != len(y.Tokens) {
					t.Fatalf("%v user %d hyp %d: %v (%.6f) without cache, %v (%.6f) with", mode, u, h, x.Tokens, x.Score, y.Tokens, y.Score)
				}
				for i := range x.Tokens {
					if x.Tokens[i] != y.Tokens[i] {
						t.Fatalf("%v user %d hyp %d: %v without cache, %v with", mode, u, h, x.Tokens, y.Tokens)
					}
				}
			}
		}
	}
}
