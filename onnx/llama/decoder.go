package llama

import (
	"fmt"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"google.golang.org/protobuf/proto"
)

// Decoder graph names. One graph serves both prefill and decode steps: a prefill is a step
// with an empty cache (past length 0) and parents 0..rows-1.
const (
	Parents = "parents" // int64 [batch]: row of the previous call (cache row) each new row continues
	LogZ    = "logz"    // [batch]: log-sum-exp of the last position's logits over the vocabulary
)

// PastKey and PastValue name the cache inputs of a layer: [prev, kv_heads, past, head_dim].
func PastKey(l int) string   { return fmt.Sprintf("past.%d.key", l) }
func PastValue(l int) string { return fmt.Sprintf("past.%d.value", l) }

// PresentKey and PresentValue name the cache outputs: [batch, kv_heads, past+seq, head_dim].
func PresentKey(l int) string   { return fmt.Sprintf("present.%d.key", l) }
func PresentValue(l int) string { return fmt.Sprintf("present.%d.value", l) }

// kvCache extends each layer's new keys and values with the cached ones of the parent rows.
type kvCache struct {
	parents builder.Value
	past    []builder.Value // key, value per layer
	present []builder.Value
}

// extend gathers the parents' cached keys/values, appends the new ones along the sequence, and
// records the result as the layer's present output. k, v are [batch, kv, 1, T, hd].
func (c *kvCache) extend(g *builder.Graph, l int, k, v builder.Value) (builder.Value, builder.Value) {
	out := [2]builder.Value{}
	for i, nw := range []builder.Value{k, v} {
		past := g.Unsqueeze(g.Gather(c.past[2*l+i], c.parents, 0), 2) // [batch, kv, 1, past, hd]
		full := g.Concat(3, past, nw)
		c.present = append(c.present, g.Squeeze(full, 2))
		out[i] = full
	}
	return out[0], out[1]
}

// Decoder is an exported decoder graph.
type Decoder struct {
	Model      []byte
	Weights    *WeightBinding
	Inputs     []string
	Outputs    []string // logits, logz, then present key/value per layer
	LoRAInputs []LoRAInputInfo
	Config     hf.Config
}

// ExportDecoder builds the KV-cache decoder: inputs input_ids, attention_mask (over cached and
// new slots), position_ids (of the new tokens), parents, past key/values per layer, candidates
// [batch, c] (and LoRA matrices); outputs the candidates' logits at the last new position, the
// log-sum-exp of that position's full-vocabulary logits, and the extended cache.
func ExportDecoder(ck *hf.Checkpoint, b *WeightBinding, opt Options) (d *Decoder, err error) {
	opt.LoRADropout = 0 // inference: PEFT's dropout is the identity in eval mode
	e, err := newExporter(ck, b, opt)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("export decoder %s: %v", ck.Dir, r)
		}
	}()
	g, c := e.g, e.cfg
	ids := e.input(InputIDs, builder.Int64, "batch", "seq")
	mask := e.input(AttentionMask, builder.Int64, "batch", "total")
	pos := e.input(PositionIDs, builder.Int64, "batch", "seq")
	cache := &kvCache{parents: e.input(Parents, builder.Int64, "batch")}
	for l := 0; l < c.NumLayers; l++ {
		for _, name := range []string{PastKey(l), PastValue(l)} {
			cache.past = append(cache.past, e.input(name, e.dt, "prev", c.NumKVHeads, "past", c.HeadDim))
		}
	}
	cand := e.input(Candidates, builder.Int64, "batch", "c")
	e.loraGraphInputs()
	x := e.layers(ids, mask, pos, cache)
	g.SetPrefix("head")
	// The last slot of every row is a real token (rows are left-padded), so take it, then norm.
	x3 := g.ReshapeTo(x, g.Concat(0, g.ShapeDim(ids, 0), g.ShapeDim(ids, 1), g.ConstInt64([]int64{int64(c.HiddenSize)}, 1)))
	last := g.Sub(g.Squeeze(g.ShapeDim(ids, 1), 0), g.ConstInt64([]int64{1}))
	h := e.rmsNorm(g.Gather(x3, last, 1), hf.FinalNormName) // [batch, hidden]
	logits := g.GemmTransB(h, e.weight(e.ck.LMHead().Name))
	g.Output(g.GatherElements(logits, cand, 1), Logits)
	g.Output(g.Op("ReduceLogSumExp", e.dt, builder.Shape{logits.Shape[0]}, []builder.Value{logits},
		builder.AttrInts("axes", 1), builder.AttrInt("keepdims", 0)), LogZ)
	outputs := []string{Logits, LogZ}
	for l := 0; l < c.NumLayers; l++ {
		for i, name := range []string{PresentKey(l), PresentValue(l)} {
			g.Output(cache.present[2*l+i], name)
			outputs = append(outputs, name)
		}
	}
	g.HoistRematerializable()
	data, err := proto.Marshal(g.Model("bear"))
	if err != nil {
		return nil, err
	}
	return &Decoder{Model: data, Weights: b, Inputs: e.inputs, Outputs: outputs, LoRAInputs: e.loraInputs, Config: c}, nil
}
