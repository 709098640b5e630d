package decode_test

import (
	"fmt"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/tokenize"
)

// A beam search of width 2 over a catalogue of four titles (token 0 is EOS), scored by a toy
// language model whose next-token logits depend only on the last token. Item 13's first token
// ties with item 12's and loses the tie (lower token id first), so it is pruned at step 1.
func ExampleSearch() {
	titles := [][]int{{1, 2, 0}, {1, 3, 0}, {2, 0}, {3, 1, 0}}
	trie, err := tokenize.NewTrie(titles, [][]int{{10}, {11}, {12}, {13}}, 0)
	if err != nil {
		panic(err)
	}
	next := map[int][]float32{ // last token -> logits over the vocabulary {0, 1, 2, 3, 4}
		4: {0, 2, 1, 1, 0}, // the prompt ends with token 4
		1: {0, 0, 1, 2, 3},
		2: {3, 0, 0, 0, 0},
		3: {2, 1, 0, 0, 0},
	}
	scorer := &decode.SeqScorer{Score: func(seqs, cands [][]int) ([]decode.Scores, error) {
		out := make([]decode.Scores, len(seqs))
		for i, seq := range seqs {
			out[i] = decode.ScoresFromLogits(next[seq[len(seq)-1]], cands[i])
		}
		return out, nil
	}}
	cfg := decode.DefaultConfig() // the official evaluation's settings, with 2 beams
	cfg.Beams, cfg.Return = 2, 2
	res, err := decode.Search(scorer, trie, [][]int{{4}}, cfg)
	if err != nil {
		panic(err)
	}
	for _, h := range res[0].Hyps {
		fmt.Printf("items %v tokens %v score %.4f\n", h.Items, h.Tokens, h.Score)
	}
	fmt.Println("rank of item 12:", decode.Rank(res[0].Hyps, 12))
	// Output:
	// items [11] tokens [1 3 0] score -0.9138
	// items [12] tokens [2 0] score -0.9390
	// rank of item 12: 1
}

// NDCG@K and HR@K of four prompts whose targets came back at ranks 0, 3 and 7, and not at all.
func ExampleRankMetrics() {
	m := decode.RankMetrics([]int{0, 3, 7, -1}, nil)
	for i, k := range m.Ks {
		fmt.Printf("NDCG@%d %.4f  HR@%d %.4f\n", k, m.NDCG[i], k, m.HR[i])
	}
	// Output:
	// NDCG@1 0.2500  HR@1 0.2500
	// NDCG@5 0.3577  HR@5 0.5000
	// NDCG@10 0.4365  HR@10 0.7500
}
