package decode

import (
	"math"
	"testing"
)

func TestEvaluateOfficialFormulas(t *testing.T) {
	l2 := math.Log2
	tests := []struct {
		name  string
		ranks []int
		ndcg  []float64 // @1, @5, @10
		hr    []float64
	}{
		{"all first", []int{0, 0}, []float64{1, 1, 1}, []float64{1, 1, 1}},
		{"none found", []int{-1, -1, -1}, []float64{0, 0, 0}, []float64{0, 0, 0}},
		{"empty-ish single miss", []int{-1}, []float64{0, 0, 0}, []float64{0, 0, 0}},
		// the example of the official formulas: ranks 0, 2, 5, 10, not found
		{"mixed", []int{0, 2, 5, 10, -1},
			[]float64{1.0 / 5, (1 + 1/l2(4)) / 5, (1 + 1/l2(4) + 1/l2(7)) / 5},
			[]float64{1.0 / 5, 2.0 / 5, 3.0 / 5}},
		{"boundaries", []int{4, 9, 1},
			[]float64{0, (1/l2(6) + 1/l2(3)) / 3, (1/l2(6) + 1/l2(11) + 1/l2(3)) / 3},
			[]float64{0, 2.0 / 3, 1}},
	}
	for _, tc := range tests {
		m := RankMetrics(tc.ranks, nil)
		for i := range Ks {
			if math.Abs(m.NDCG[i]-tc.ndcg[i]) > 1e-15 || math.Abs(m.HR[i]-tc.hr[i]) > 1e-15 {
				t.Errorf("%s @%d: NDCG %v HR %v, want %v %v", tc.name, Ks[i], m.NDCG[i], m.HR[i], tc.ndcg[i], tc.hr[i])
			}
		}
		mp := m.Map()
		if mp["NDCG@10"] != m.NDCG[2] || mp["HR@1"] != m.HR[0] || len(mp) != 6 {
			t.Errorf("%s: map %v", tc.name, mp)
		}
	}
	if s := RankMetrics([]int{0, -1}, nil).String(); s != "NDCG@1 0.500000  NDCG@5 0.500000  NDCG@10 0.500000  HR@1 0.500000  HR@5 0.500000  HR@10 0.500000" {
		t.Errorf("String: %q", s)
	}
	if m := RankMetrics(nil, nil); m.N != 0 || m.HR[0] != 0 {
		t.Error("empty")
	}
	if m := RankMetrics([]int{0, 3}, []int{1, 5}); len(m.NDCG) != 2 || m.HR[1] != 1 {
		t.Errorf("custom ks: %+v", m)
	}
}

func TestRanks(t *testing.T) {
	hs := []Hypothesis{{Items: []int{7}}, {Items: []int{3, 9}}, {Items: []int{4}}}
	for target, want := range map[int]int{7: 0, 3: 1, 9: 1, 4: 2, 5: -1} {
		if got := Rank(hs, target); got != want {
			t.Errorf("Rank(%d) = %d, want %d", target, got, want)
		}
	}
	pred := []string{`"Lego Set"`, `"Puzzle"`, `"Puzzle"`, `"Ball"`, `"Puzzle 2"`}
	for target, want := range map[string]int{`"Puzzle"`: 1, `"Ball"`: 3, `"Kite"`: -1, `"Lego Set"`: 0, `"Puzzle 2"`: 4} {
		if got := RankOfTitles(pred, target); got != want {
			t.Errorf("RankOfTitles(%s) = %d, want %d", target, got, want)
		}
	}
	// title[1:-1] works on code points and cuts whatever the first and last characters are
	for in, want := range map[string]string{`"é ü"`: "é ü", `""`: "", `"`: "", ``: "", `"ab`: "a", `xyz`: "y"} {
		if got := OfficialTitle(in); got != want {
			t.Errorf("OfficialTitle(%q) = %q, want %q", in, got, want)
		}
	}
	if got := OfficialResponse("Below ... ### Response:\n\"Kite\""); got != `"Kite"` {
		t.Errorf("OfficialResponse = %q", got)
	}
	if got := OfficialResponse(`"Kite"`); got != `"Kite"` {
		t.Errorf("OfficialResponse without marker = %q", got)
	}
}
