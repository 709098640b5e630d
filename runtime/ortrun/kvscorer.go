package ortrun

import (
	"fmt"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
)

// kvScorer decodes with one ONNX graph that extends a key/value cache: Start is a step with an
// empty cache (prefill), Step feeds one token per beam and gathers the cache rows of the
// parents inside the graph. Only candidate logits, one log-sum-exp per row and the cache cross
// between Go and ONNX Runtime; the cache lives in Go buffers between steps.
type kvScorer struct {
	sess    *Session
	weights *weightPlan
	cfg     hf.Config
	inputs  []string
	lora    map[string]Tensor
	rows    int
	past    int       // cached slots per row
	mask    []int64   // [rows, past]
	nextPos []int64   // position of the next token of each row
	cache   []Tensor  // present key/value per layer, [rows, kv, past, hd]
	scratch []float32 // candidate logits
	// spare holds the backing arrays of the cache before the current one: the next step writes
	// its output there (ONNX Runtime overwrites every element), so no step allocates or zeroes
	// a new cache once the arrays are large enough.
	spare [][]float32
}

func newKVScorer(ck *hf.Checkpoint, mo ModelOptions, o ScorerOptions) (Scorer, error) {
	if mo.DType != "" && mo.DType != hf.F32 {
		return nil, fmt.Errorf("KV-cache decoding computes in float32, not %s", mo.DType)
	}
	w, err := planWeights(ck, mo, hf.F32, true)
	if err != nil {
		return nil, err
	}
	d, err := llama.ExportDecoder(ck, w.binding, w.exportOptions(llama.Options{DType: hf.F32, LoRA: mo.LoRA}))
	if err != nil {
		w.release()
		return nil, err
	}
	sess, err := w.newSession(d.Model, w.externalDir(), d.Inputs, d.Outputs, mo.SessionOptions, hf.F32)
	if err != nil {
		w.release()
		return nil, fmt.Errorf("%s: decoder: %w", ck.Dir, err)
	}
	s := &kvScorer{sess: sess, weights: w, cfg: ck.Config, inputs: d.Inputs, lora: map[string]Tensor{}}
	for _, in := range d.LoRAInputs {
		w := make([]float32, in.Rows*in.Cols)
		if o.Adapter != nil {
			copy(w, o.Adapter.Weights[in.Name])
		}
		s.lora[in.Name] = Tensor{[]int64{int64(in.Rows), int64(in.Cols)}, w}
	}
	return s, nil
}

func (s *kvScorer) Close() error {
	err := s.sess.Close()
	s.weights.release()
	return err
}

func (s *kvScorer) Start(prompts [][]int, cands [][]int) ([]decode.Scores, error) {
	b := NewTokenBatch(prompts)
	parents := make([]int64, b.B)
	s.nextPos = make([]int64, b.B)
	for i := range parents {
		parents[i] = int64(i)
		s.nextPos[i] = int64(b.Lengths[i])
	}
	kv, hd := int64(s.cfg.NumKVHeads), int64(s.cfg.HeadDim)
	s.cache = make([]Tensor, 2*s.cfg.NumLayers)
	for i := range s.cache {
		s.cache[i] = Tensor{[]int64{int64(b.B), kv, 0, hd}, []float32{}}
	}
	s.rows, s.past = b.B, 0
	return s.run(b.IDs, b.Mask, b.Pos, b.T, parents, cands)
}

func (s *kvScorer) Step(parents []int, tokens []int, cands [][]int) ([]decode.Scores, error) {
	r := len(parents)
	ids, pos := make([]int64, r), make([]int64, r)
	par := make([]int64, r)
	total := s.past + 1
	mask := make([]int64, r*total)
	for i, p := range parents {
		if p < 0 || p >= s.rows {
			return nil, fmt.Errorf("scorer: parent %d of row %d outside the previous %d rows", p, i, s.rows)
		}
		ids[i], pos[i], par[i] = int64(tokens[i]), s.nextPos[p], int64(p)
		copy(mask[i*total:], s.mask[p*s.past:(p+1)*s.past])
		mask[i*total+s.past] = 1
	}
	next := make([]int64, r)
	for i, p := range parents {
		next[i] = s.nextPos[p] + 1
	}
	s.nextPos = next
	return s.run(ids, mask, pos, 1, par, cands)
}

// run feeds seq new tokens per row; mask covers the cached slots and the new ones.
func (s *kvScorer) run(ids, mask, pos []int64, seq int, parents []int64, cands [][]int) ([]decode.Scores, error) {
	rows := len(parents)
	if len(cands) != rows {
		return nil, fmt.Errorf("scorer: %d candidate lists for %d rows", len(cands), rows)
	}
	c := 1
	for _, cs := range cands {
		c = max(c, len(cs))
	}
	padded := make([]int64, rows*c)
	for i, cs := range cands {
		for j := range c {
			switch {
			case j < len(cs):
				padded[i*c+j] = int64(cs[j])
			case len(cs) > 0:
				padded[i*c+j] = int64(cs[0]) // padding: a valid id whose logit is ignored
			}
		}
	}
	total := len(mask) / rows
	in := map[string]Tensor{
		llama.InputIDs: {[]int64{int64(rows), int64(seq)}, ids}, llama.AttentionMask: {[]int64{int64(rows), int64(total)}, mask},
		llama.PositionIDs: {[]int64{int64(rows), int64(seq)}, pos}, llama.Parents: {[]int64{int64(rows)}, parents},
		llama.Candidates: {[]int64{int64(rows), int64(c)}, padded},
	}
	for l := 0; l < s.cfg.NumLayers; l++ {
		in[llama.PastKey(l)], in[llama.PastValue(l)] = s.cache[2*l], s.cache[2*l+1]
	}
	for name, t := range s.lora {
		in[name] = t
	}
	kv, hd := int64(s.cfg.NumKVHeads), int64(s.cfg.HeadDim)
	if cap(s.scratch) < rows*c {
		s.scratch = make([]float32, rows*c)
	}
	logits := s.scratch[:rows*c]
	logz := make([]float32, rows)
	out := map[string]Tensor{llama.Logits: {[]int64{int64(rows), int64(c)}, logits}, llama.LogZ: {[]int64{int64(rows)}, logz}}
	next := make([]Tensor, len(s.cache))
	size := int64(rows) * kv * int64(total) * hd
	if len(s.spare) != len(s.cache) {
		s.spare = make([][]float32, len(s.cache))
	}
	for l := 0; l < s.cfg.NumLayers; l++ {
		for i, name := range []string{llama.PresentKey(l), llama.PresentValue(l)} {
			buf := s.spare[2*l+i]
			if int64(cap(buf)) < size {
				buf = make([]float32, size, size+size/4) // room for a few more steps
			}
			t := Tensor{[]int64{int64(rows), kv, int64(total), hd}, buf[:size]}
			next[2*l+i] = t
			out[name] = t
		}
	}
	if err := s.sess.RunNamed(in, out); err != nil {
		return nil, fmt.Errorf("decode step: %w", err)
	}
	for i, t := range s.cache {
		s.spare[i] = t.Data.([]float32) // the cache just read becomes the next step's output
	}
	s.cache, s.rows, s.past, s.mask = next, rows, total, mask
	res := make([]decode.Scores, rows)
	for i, cs := range cands {
		res[i] = decode.Scores{Logits: append([]float32(nil), logits[i*c:i*c+len(cs)]...), LogZ: float64(logz[i])}
	}
	return res, nil
}
