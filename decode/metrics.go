package decode

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Ks are the cut-offs of the official evaluation.
var Ks = []int{1, 5, 10}

// Rank is the position of the first hypothesis whose item ids include target, -1 if none
// (item identity: duplicate titles share a hypothesis, so any of their ids matches it).
func Rank(hyps []Hypothesis, target int) int {
	for i, h := range hyps {
		if slices.Contains(h.Items, target) {
			return i
		}
	}
	return -1
}

// OfficialTitle cuts the first and the last character (Unicode code point) off a string, as
// the official script's title[1:-1] does to strip the quotes around a decoded title (and to
// the "output" field): "" when the string has fewer than 3 code points.
func OfficialTitle(s string) string {
	r := []rune(s)
	if len(r) < 3 {
		return ""
	}
	return string(r[1 : len(r)-1])
}

// OfficialResponse is the official post-processing of one decoded sequence (decoded with
// skip_special_tokens): the text after the last "Response:\n" (all of it if absent).
func OfficialResponse(decoded string) string {
	if i := strings.LastIndex(decoded, "Response:\n"); i >= 0 {
		return decoded[i+len("Response:\n"):]
	}
	return decoded
}

// RankOfTitles is the official string-matching rank: predicted are the decoded responses
// (each still with its quotes), target is the "output" field ("\"TITLE\""); both pass through
// OfficialTitle and the rank is the first exact match, -1 if none.
func RankOfTitles(predicted []string, target string) int {
	t := OfficialTitle(target)
	for i, p := range predicted {
		if OfficialTitle(p) == t {
			return i
		}
	}
	return -1
}

// Metrics holds NDCG@K and HR@K for each K.
type Metrics struct {
	Ks   []int
	NDCG []float64
	HR   []float64
	N    int // number of ranks averaged
}

// RankMetrics computes the official ranking metrics from 0-based ranks (-1: not found):
// NDCG@K = mean of 1/log2(rank+2) over ranks < K (0 otherwise), HR@K = share of ranks < K.
// ks nil means Ks.
func RankMetrics(ranks []int, ks []int) Metrics {
	if ks == nil {
		ks = Ks
	}
	m := Metrics{Ks: ks, NDCG: make([]float64, len(ks)), HR: make([]float64, len(ks)), N: len(ranks)}
	if len(ranks) == 0 {
		return m
	}
	for i, k := range ks {
		hits, dcg := 0, 0.0
		for _, r := range ranks {
			if r >= 0 && r < k {
				hits++
				dcg += 1 / math.Log2(float64(r)+2)
			}
		}
		m.HR[i] = float64(hits) / float64(len(ranks))
		m.NDCG[i] = dcg / float64(len(ranks))
	}
	return m
}

// Map returns the metrics keyed as the official result files are ("NDCG@1", "HR@10", ...).
func (m Metrics) Map() map[string]float64 {
	out := make(map[string]float64, 2*len(m.Ks))
	for i, k := range m.Ks {
		out[fmt.Sprintf("NDCG@%d", k)] = m.NDCG[i]
		out[fmt.Sprintf("HR@%d", k)] = m.HR[i]
	}
	return out
}

// String formats the metrics in the official order (all NDCG, then all HR).
func (m Metrics) String() string {
	var b strings.Builder
	for i, k := range m.Ks {
		fmt.Fprintf(&b, "NDCG@%d %.6f  ", k, m.NDCG[i])
	}
	for i, k := range m.Ks {
		fmt.Fprintf(&b, "HR@%d %.6f  ", k, m.HR[i])
	}
	return strings.TrimSpace(b.String())
}
