package decode

import (
	"math"
	"sort"
)

// refSearch is a deliberately literal re-statement of transformers' beam search for ONE prompt,
// written independently of search(): B rows over the whole vocabulary, rows 1..B-1 starting at
// -1e9, disallowed tokens at -inf, a flattened stable sort for the top 2B, BeamHypotheses-style
// bookkeeping, the early_stopping=False check, and HF's finalize at max_new_tokens. It keeps
// the junk rows HF keeps (copies scored near -1e9 and -inf continuations) so the test checks
// that dropping them changes nothing.
type refHyp struct {
	score float64
	seq   []int
}

type refOut struct {
	hyps  []refHyp          // best first, num_return_sequences of them (junk included)
	live  []map[string]bool // live[s]: real prefixes among the running beams after step s
	tried []map[string]bool // tried[s]: sequences whose EOS was offered to the hypotheses at step s
}

func refSearch(t *testTrie, lm func([]int) []float32, V int, prompt []int, B, ret int, mode Mode, lp float64, stop StopRule, maxNew int) refOut {
	eos := t.EOS()
	type row struct {
		gen   []int
		score float64
	}
	rows := make([]row, B)
	for i := range rows {
		rows[i].score = -1e9
	}
	rows[0].score = 0
	var hyps []refHyp
	worst := 1e9
	add := func(seq []int, sum float64, genLen int) bool {
		score := sum / math.Pow(float64(genLen), lp)
		if len(hyps) < B || score > worst {
			hyps = append(hyps, refHyp{score, seq})
			if len(hyps) > B {
				idx := make([]int, len(hyps))
				for i := range idx {
					idx[i] = i
				}
				sort.SliceStable(idx, func(a, b int) bool { return hyps[idx[a]].score < hyps[idx[b]].score })
				worst = hyps[idx[1]].score
				hyps = append(hyps[:idx[0]], hyps[idx[0]+1:]...)
			} else {
				worst = math.Min(score, worst)
			}
			return true
		}
		return false
	}
	out := refOut{live: []map[string]bool{{}}, tried: []map[string]bool{{}}}
	done := false
	cur := 0
	for cur < maxNew && !done {
		cur++
		flat := make([]float64, B*V)
		for r, rw := range rows {
			allowedToks := []int{eos}
			if n, ok := t.walk(rw.gen); ok && len(t.Children(n)) > 0 {
				allowedToks = t.Children(n)
			}
			lg := lm(append(append([]int(nil), prompt...), rw.gen...))
			mask := make([]bool, V)
			for _, a := range allowedToks {
				mask[a] = true
			}
			// log-softmax and mask in the order of the mode
			lgs := make([]float64, V)
			if mode == AfterSoftmax {
				mx := math.Inf(-1)
				for _, v := range lg {
					mx = math.Max(mx, float64(v))
				}
				s := 0.0
				for _, v := range lg {
					s += math.Exp(float64(v) - mx)
				}
				for i, v := range lg {
					lgs[i] = float64(v) - (mx + math.Log(s))
					if !mask[i] {
						lgs[i] = math.Inf(-1)
					}
				}
			} else {
				mx := math.Inf(-1)
				for i, v := range lg {
					if mask[i] {
						mx = math.Max(mx, float64(v))
					}
				}
				s := 0.0
				for i, v := range lg {
					if mask[i] {
						s += math.Exp(float64(v) - mx)
					}
				}
				for i, v := range lg {
					lgs[i] = math.Inf(-1)
					if mask[i] {
						lgs[i] = float64(v) - (mx + math.Log(s))
					}
				}
			}
			for i := range lgs {
				flat[r*V+i] = rw.score + lgs[i]
			}
		}
		order := make([]int, B*V)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return flat[order[a]] > flat[order[b]] })
		order = order[:2*B]
		var next []row
		out.live = append(out.live, map[string]bool{})
		out.tried = append(out.tried, map[string]bool{})
		for rank, idx := range order {
			r, tok := idx/V, idx%V
			gen := append(append([]int(nil), rows[r].gen...), tok)
			if tok == eos {
				if rank >= B {
					continue
				}
				if flat[idx] > -1e8 {
					out.tried[cur][key(gen)] = true
				}
				add(gen, flat[idx], cur)
			} else {
				next = append(next, row{gen, flat[idx]})
				if flat[idx] > -1e8 {
					out.live[cur][key(gen)] = true
				}
				if len(next) == B {
					break
				}
			}
		}
		rows = next
		if len(hyps) >= B {
			best := flat[order[0]]
			if stop == StopVectorized {
				best = next[0].score
			}
			if worst >= best/math.Pow(float64(cur), lp) {
				done = true
			}
		}
	}
	if !done {
		for _, rw := range rows {
			add(rw.gen, rw.score, cur)
		}
	}
	idx := make([]int, len(hyps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return hyps[idx[a]].score < hyps[idx[b]].score })
	for k := 0; k < ret && k < len(idx); k++ {
		out.hyps = append(out.hyps, hyps[idx[len(idx)-1-k]])
	}
	return out
}
