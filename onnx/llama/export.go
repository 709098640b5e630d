package llama

import (
	"fmt"
	"math"
	"strings"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"google.golang.org/protobuf/proto"
)

// LogitsMode selects what the graph's logits output holds.
type LogitsMode int

const (
	// LogitsFullVocab: logits [n, vocab] at the positions in logit_index.
	LogitsFullVocab LogitsMode = iota
	// LogitsCandidates: logits [n, c] of the token ids in candidates [n, c], per position.
	LogitsCandidates
	// LogitsSubset: logits [n, u] of the token ids in vocab_subset [u], the same ids at every
	// position (the union of the tokens a batch's loss can see): the LM head's rows of those
	// ids are gathered first, so the head is one [n, hidden]·[hidden, u] Gemm instead of the
	// full-vocabulary one.
	LogitsSubset
)

// LoRASpec describes the LoRA adapters the graph takes as inputs. Rank and Alpha are PEFT's r
// and lora_alpha, the defaults of every module; RankPattern and AlphaPattern are PEFT's
// rank_pattern and alpha_pattern in the order of adapter_config.json (the first key that
// matches a module wins, so the order is part of the spec), giving some modules their own r
// or alpha: use ModuleRank, ModuleAlpha and ModuleScaling for a module's values.
type LoRASpec struct {
	Targets      []string       `json:"targets"` // module names, e.g. q_proj, v_proj
	Rank         int            `json:"r"`
	Alpha        float64        `json:"alpha"`
	RSLoRA       bool           `json:"use_rslora"` // scaling alpha/sqrt(r) instead of alpha/r (PEFT's use_rslora)
	RankPattern  []RankPattern  `json:"rank_pattern,omitempty"`
	AlphaPattern []AlphaPattern `json:"alpha_pattern,omitempty"`
}

// Scaling is the factor PEFT applies to the LoRA branch of a module that no rank_pattern or
// alpha_pattern key matches; ModuleScaling is the factor of a given module.
func (s LoRASpec) Scaling() float64 {
	if s.RSLoRA {
		return s.Alpha / math.Sqrt(float64(s.Rank))
	}
	return s.Alpha / float64(s.Rank)
}

// targets reports whether module is adapted.
func (s *LoRASpec) targets(module string) bool {
	if s == nil {
		return false
	}
	for _, t := range s.Targets {
		if t == module {
			return true
		}
	}
	return false
}

// Inputs lists the LoRA matrices of the spec on a model of configuration cfg, layer by layer in
// HF module order: A [r, in] then B [out, r], r the module's rank (ModuleRank).
func (s LoRASpec) Inputs(cfg hf.Config) []LoRAInputInfo {
	var out []LoRAInputInfo
	for l := 0; l < cfg.NumLayers; l++ {
		for _, m := range hf.Modules {
			if !s.targets(m) {
				continue
			}
			o, i := cfg.ModuleShape(m)
			r := s.ModuleRank(l, m)
			out = append(out,
				LoRAInputInfo{Name: loRAInput(l, m, "A"), Layer: l, Module: m, Which: "A", Rows: r, Cols: i},
				LoRAInputInfo{Name: loRAInput(l, m, "B"), Layer: l, Module: m, Which: "B", Rows: o, Cols: r})
		}
	}
	return out
}

// Validate checks the target names, the rank and the rank and alpha patterns (keys Go can
// match as PEFT does, positive ranks, finite alphas).
func (s LoRASpec) Validate() error {
	if s.Rank <= 0 {
		return fmt.Errorf("llama.LoRASpec.Rank %d: want > 0", s.Rank)
	}
	if len(s.Targets) == 0 {
		return fmt.Errorf("llama.LoRASpec.Targets: no target modules")
	}
	for _, t := range s.Targets {
		if _, ok := hf.ModulePath[t]; !ok {
			return fmt.Errorf("llama.LoRASpec.Targets: %q: want one of %s", t, strings.Join(hf.Modules, ","))
		}
	}
	return s.validatePatterns()
}

// loRAInput is the graph input name of a LoRA matrix; which is "A" or "B".
func loRAInput(layer int, module, which string) string {
	return fmt.Sprintf("lora.%d.%s.%s", layer, module, which)
}

// Graph input and output names.
const (
	InputIDs      = "input_ids"      // int64 [batch, seq]
	AttentionMask = "attention_mask" // int64 [batch, seq], 1 = token, 0 = padding
	PositionIDs   = "position_ids"   // int64 [batch, seq]
	LogitIndex    = "logit_index"    // int64 [n], flat b·seq + t
	Candidates    = "candidates"     // int64 [n, c]
	VocabSubset   = "vocab_subset"   // int64 [u], token ids (LogitsSubset): any order, repeats allowed
	DropoutSeed   = "dropout_seed"   // int64 [1] (LoRADropout > 0): the masks' seed, see DropoutMask
	Logits        = "logits"
)

// Options configure ExportForward.
type Options struct {
	DType  hf.DType // compute dtype: F32 (default) or F64
	LoRA   *LoRASpec
	Logits LogitsMode
	// WeightsAsInputs makes every base weight a graph input under its HF name instead of an
	// initializer: for training all weights (they change every step). Weights then come from
	// Go buffers, and ORT cannot pre-pack them.
	WeightsAsInputs bool
	// StoredWeightInputs makes every base weight a graph input in the dtype the checkpoint
	// stores it in (bf16, fp16, float32), cast to the compute dtype where it is used: the
	// weights stay frozen and at their stored precision, and a runtime binds them from memory
	// it holds once for all its sessions (the checkpoint's files, mapped).
	StoredWeightInputs bool
	// FrozenDType, with StoredWeightInputs, is the dtype the runtime holds the frozen weights in
	// when it is not the checkpoint's (float32 copies widened in memory); empty: the stored one.
	FrozenDType hf.DType
	// LoRADropout is PEFT's lora_dropout p in [0, 1): when positive, the forward graph takes
	// dropout_seed and each LoRA module computes B(A(dropout(x)))·scaling with the mask of
	// DropoutMask. The decoder (inference) ignores it, as PEFT's eval mode does.
	LoRADropout float64
}

// Forward is an exported forward graph and what a runtime needs to load it.
type Forward struct {
	Model      []byte // serialized ModelProto; initializers reference Weights.Dir
	Weights    *WeightBinding
	Inputs     []string
	Outputs    []string
	Config     hf.Config
	Options    Options
	LoRAInputs []LoRAInputInfo
}

// LoRAInputInfo names one LoRA input and its shape.
type LoRAInputInfo struct {
	Name   string `json:"name"`
	Layer  int    `json:"layer"`
	Module string `json:"module"`
	Which  string `json:"which"` // A or B
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
}

// ForwardGraph is a forward graph still open for extension (autodiff adds residual outputs to it).
type ForwardGraph struct {
	Graph      *builder.Graph
	Inputs     []string // graph inputs in order (weights included when they are inputs)
	LoRAInputs []LoRAInputInfo
	Weights    *WeightBinding
	Config     hf.Config
	Options    Options
}

// BuildForward builds the forward graph of the checkpoint with weights bound by b (b may be nil
// when the weights are graph inputs).
func BuildForward(ck *hf.Checkpoint, b *WeightBinding, opt Options) (bt *ForwardGraph, err error) {
	e, err := newExporter(ck, b, opt)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			bt, err = nil, fmt.Errorf("export %s: %v", ck.Dir, r)
		}
	}()
	e.build()
	e.g.HoistRematerializable()
	return &ForwardGraph{Graph: e.g, Inputs: e.inputs, LoRAInputs: e.loraInputs, Weights: b, Config: ck.Config, Options: e.opt}, nil
}

// ExportForward builds and serializes the forward graph.
func ExportForward(ck *hf.Checkpoint, b *WeightBinding, opt Options) (*Forward, error) {
	bt, err := BuildForward(ck, b, opt)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(bt.Graph.Model("bear"))
	if err != nil {
		return nil, err
	}
	return &Forward{Model: data, Weights: b, Inputs: bt.Inputs, Outputs: []string{Logits}, Config: ck.Config,
		Options: bt.Options, LoRAInputs: bt.LoRAInputs}, nil
}

type exporter struct {
	ck         *hf.Checkpoint
	cfg        hf.Config
	b          *WeightBinding
	opt        Options
	dt         builder.DType
	g          *builder.Graph
	weights    map[string]builder.Value
	inputs     []string
	loraInputs []LoRAInputInfo
	seed       builder.Value // dropout_seed, when LoRADropout > 0
	drop       *dropout      // built at the first LoRA module
}

// newExporter checks the options (F32 when no dtype is given) before any graph is built.
func newExporter(ck *hf.Checkpoint, b *WeightBinding, opt Options) (*exporter, error) {
	if opt.DType == "" {
		opt.DType = hf.F32
	}
	if opt.LoRA != nil {
		if err := opt.LoRA.Validate(); err != nil {
			return nil, err
		}
	}
	if err := validDropout(opt); err != nil {
		return nil, fmt.Errorf("export %s: %w", ck.Dir, err)
	}
	switch {
	case opt.WeightsAsInputs && opt.StoredWeightInputs:
		return nil, fmt.Errorf("export %s: weights are either trained (WeightsAsInputs) or frozen (StoredWeightInputs), not both", ck.Dir)
	case b == nil && !opt.WeightsAsInputs && !opt.StoredWeightInputs:
		return nil, fmt.Errorf("export %s: no weight binding", ck.Dir)
	}
	dt := builder.Float32
	if opt.DType == hf.F64 {
		dt = builder.Float64
	}
	return &exporter{ck: ck, cfg: ck.Config, b: b, opt: opt, dt: dt, g: builder.New("llama_forward"), weights: map[string]builder.Value{}}, nil
}

func (e *exporter) input(name string, dt builder.DType, dims ...any) builder.Value {
	e.inputs = append(e.inputs, name)
	return e.g.Input(name, dt, dims...)
}

// stored declares an HF weight (once) as it reaches the graph: an external initializer in the
// binding's dtype, or a graph input (in the compute dtype when trained, in the stored dtype
// when frozen).
func (e *exporter) stored(name string) builder.Value {
	if v, ok := e.weights[name]; ok {
		return v
	}
	t, ok := e.ck.Weights[name]
	if !ok {
		panic("weight " + name + " is not in the checkpoint")
	}
	var v builder.Value
	switch {
	case e.opt.WeightsAsInputs || e.opt.StoredWeightInputs:
		dt := e.dt
		switch {
		case e.opt.StoredWeightInputs && e.opt.FrozenDType != "":
			dt = onnxDType(e.opt.FrozenDType)
		case e.opt.StoredWeightInputs:
			dt = onnxDType(t.DType)
		}
		dims := make([]any, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = int(d)
		}
		v = e.input(name, dt, dims...)
	default:
		ref, ok := e.b.Refs[name]
		if !ok {
			panic("weight " + name + " is not bound")
		}
		dt := e.dt
		if ref.DType != "" {
			dt = onnxDType(ref.DType)
		}
		v = e.g.External(name, dt, t.Shape, ref.Location, ref.Offset, ref.Length)
	}
	e.weights[name] = v
	return v
}

// weight is an HF weight in the compute dtype.
func (e *exporter) weight(name string) builder.Value { return e.compute(e.stored(name)) }

// compute casts a weight (or rows gathered from one) to the compute dtype. Casts of weights
// are marked rematerializable: a Stash backward casts again what it needs instead of keeping a
// float32 copy of every weight as a residual.
func (e *exporter) compute(v builder.Value) builder.Value {
	if v.DType == e.dt {
		return v
	}
	return e.g.MarkRematerializable(e.g.Cast(v, e.dt))
}

// onnxDType is the ONNX element type of a floating-point safetensors dtype.
func onnxDType(d hf.DType) builder.DType {
	switch d {
	case hf.F32:
		return builder.Float32
	case hf.F64:
		return builder.Float64
	case hf.F16:
		return builder.Float16
	case hf.BF16:
		return builder.BFloat16
	}
	panic(fmt.Sprintf("weight dtype %s has no ONNX floating-point type", d))
}

// attention holds the per-forward tensors every layer's attention shares.
type attention struct {
	cos, sin   builder.Value // [B, 1, 1, T, hd]
	allowed    builder.Value // bool [B, 1, 1, T, total]: total = cached + new key slots
	batch, seq builder.Value // int64 [1]
}

// build emits the forward graph. Its conventions:
//   - hidden states stay 2-D, [batch·seq, hidden], so every projection is one Gemm with
//     transB=1 on the HF weight as stored ([out, in]): no transposed copies of weights, and
//     ONNX Runtime pre-packs them when they are initializers;
//   - attention is computed as [batch, kv_heads, group, seq, head_dim] (layer): the query heads
//     that share a key/value head form the group axis, so keys and values are broadcast, never
//     repeated;
//   - masked scores are replaced (Where) by the dtype's lowest finite value, as transformers
//     does, so a fully masked row (a padding query) gives a uniform softmax instead of NaN;
//   - LogitsCandidates reduces the logits after the full-vocabulary Gemm (the decoder needs
//     that Gemm for its log-sum-exp anyway); LogitsSubset gathers the head's rows first (tied
//     embedding or lm_head alike). For training the subset is the union of the tokens the loss
//     can see in a batch (the trie's allowed tokens and the targets: a few thousand of the
//     vocabulary), so the logits, their cotangent and the head's gradient shrink alike; under
//     full training the head's gradient is the [u, hidden] one scattered back.
func (e *exporter) build() {
	g := e.g
	ids := e.input(InputIDs, builder.Int64, "batch", "seq")
	mask := e.input(AttentionMask, builder.Int64, "batch", "seq")
	pos := e.input(PositionIDs, builder.Int64, "batch", "seq")
	idx := e.input(LogitIndex, builder.Int64, "n")
	var cand, subset builder.Value
	switch e.opt.Logits {
	case LogitsCandidates:
		cand = e.input(Candidates, builder.Int64, "n", "c")
	case LogitsSubset:
		subset = e.input(VocabSubset, builder.Int64, "u")
	}
	e.loraGraphInputs()
	if e.opt.LoRADropout > 0 {
		e.seed = e.input(DropoutSeed, builder.Int64, 1)
	}
	x := e.layers(ids, mask, pos, nil)
	g.SetPrefix("head")
	x = e.rmsNorm(x, hf.FinalNormName)
	sel := g.Gather(x, idx, 0) // [n, hidden]
	head := e.ck.LMHead().Name
	switch e.opt.Logits {
	case LogitsCandidates:
		g.Output(g.GatherElements(g.GemmTransB(sel, e.weight(head)), cand, 1), Logits)
	case LogitsSubset:
		// The [u, hidden] rows are gathered at the stored precision, then cast, and marked
		// rematerializable: a Stash backward gathers them again (from the head it reads anyway)
		// rather than keeping a copy.
		rows := e.compute(g.MarkRematerializable(g.Gather(e.stored(head), subset, 0)))
		g.Output(g.GemmTransB(sel, rows), Logits)
	default:
		g.Output(g.GemmTransB(sel, e.weight(head)), Logits)
	}
}

func (e *exporter) loraGraphInputs() {
	if e.opt.LoRA != nil {
		for _, in := range e.opt.LoRA.Inputs(e.cfg) {
			e.input(in.Name, e.dt, in.Rows, in.Cols)
			e.loraInputs = append(e.loraInputs, in)
		}
	}
}

// layers runs the embedding and every decoder layer; kv, when set, extends each layer's keys
// and values with a cache.
func (e *exporter) layers(ids, mask, pos builder.Value, kv *kvCache) builder.Value {
	g, c := e.g, e.cfg
	g.SetPrefix("embed")
	x := g.Reshape(e.compute(g.Gather(e.stored(hf.EmbedName), ids, 0)), -1, int64(c.HiddenSize))
	att := e.attentionInputs(ids, mask, pos)
	for l := 0; l < c.NumLayers; l++ {
		g.SetPrefix(fmt.Sprintf("layers.%d", l))
		x = e.layer(l, x, att, kv)
	}
	return x
}

// attentionInputs computes the rotary tables and the causal + padding mask once per forward.
func (e *exporter) attentionInputs(ids, mask, pos builder.Value) attention {
	g := e.g
	g.SetPrefix("rope")
	inv := e.cfg.InvFreq()
	invf := make([]float64, len(inv))
	for i, v := range inv {
		invf[i] = float64(v)
	}
	// As transformers does whatever the model dtype: angles = position · inv_freq and their cos and
	// sin in float32, then cast. Positions carry no gradient, so float64 graphs lose nothing.
	freqs := g.Mul(g.Unsqueeze(g.Cast(pos, builder.Float32), 2), g.ConstFloat(builder.Float32, invf, int64(len(invf))))
	angles := g.Concat(-1, freqs, freqs) // half-split layout: the table repeats, [B, T, hd]
	var a attention
	a.cos = g.Unsqueeze(g.Cast(g.Cos(angles), e.dt), 1, 2)
	a.sin = g.Unsqueeze(g.Cast(g.Sin(angles), e.dt), 1, 2)

	g.SetPrefix("mask")
	a.batch, a.seq = g.ShapeDim(ids, 0), g.ShapeDim(ids, 1)
	zero, one := g.ConstInt64([]int64{0}), g.ConstInt64([]int64{1})
	// Keys are the mask's slots (cached ones first, then the new tokens); new token i sits at key
	// slot past + i and sees every key slot up to its own.
	total := g.ShapeDim(mask, 1)
	keys := g.Range(zero, g.Squeeze(total, 0), one)    // [total]
	queries := g.Range(zero, g.Squeeze(a.seq, 0), one) // [T]
	if !total.Ints[0].Equal(a.seq.Ints[0]) {
		queries = g.Add(queries, g.Squeeze(g.Sub(total, a.seq), 0))
	}
	causal := g.LessOrEqual(g.Unsqueeze(keys, 0), g.Unsqueeze(queries, 1))    // [T, total]
	keyOK := g.Unsqueeze(g.Equal(mask, g.ConstInt64([]int64{1}, 1)), 1, 2, 3) // [B, 1, 1, 1, total]
	a.allowed = g.And(causal, keyOK)
	return a
}

func (e *exporter) layer(l int, x builder.Value, a attention, cache *kvCache) builder.Value {
	g, c := e.g, e.cfg
	kv, group, hd := int64(c.NumKVHeads), int64(c.NumHeads/c.NumKVHeads), int64(c.HeadDim)
	h := e.rmsNorm(x, hf.LayerWeight(l, "input_layernorm"))
	q := e.proj(l, "q_proj", h)
	k := e.proj(l, "k_proj", h)
	v := e.proj(l, "v_proj", h)
	// [B·T, heads·hd] → [B, kv, group, T, hd]; keys and values get group 1 and broadcast.
	split := func(t builder.Value, group int64) builder.Value {
		shape := g.Concat(0, a.batch, a.seq, g.ConstInt64([]int64{kv, group, hd}, 3))
		return g.Transpose(g.ReshapeTo(t, shape), 0, 2, 3, 1, 4)
	}
	q = e.rope(split(q, group), a)
	k = e.rope(split(k, 1), a)
	v = split(v, 1)
	if cache != nil {
		k, v = cache.extend(g, l, k, v)
	}
	scores := g.Mul(g.MatMul(q, g.Transpose(k, 0, 1, 2, 4, 3)), g.Scalar(e.dt, 1/math.Sqrt(float64(c.HeadDim))))
	lowest := -math.MaxFloat32
	if e.dt == builder.Float64 {
		lowest = -math.MaxFloat64
	}
	probs := g.Softmax(g.Where(a.allowed, scores, g.Scalar(e.dt, lowest)), -1)
	o := g.Transpose(g.MatMul(probs, v), 0, 3, 1, 2, 4) // [B, T, kv, group, hd]
	o = g.Reshape(o, -1, int64(c.QDim()))
	x = g.Add(x, e.proj(l, "o_proj", o))

	h = e.rmsNorm(x, hf.LayerWeight(l, "post_attention_layernorm"))
	gate := e.proj(l, "gate_proj", h)
	up := e.proj(l, "up_proj", h)
	// SiLU(gate) and its sigmoid are marked rematerializable: the backward recomputes them from
	// gate, which it keeps anyway, instead of stashing two more [tokens, intermediate] tensors
	// per layer (350 MiB of the 1B shape's residuals at 338 tokens).
	silu := g.MarkRematerializable(g.Mul(gate, g.MarkRematerializable(g.Sigmoid(gate))))
	act := g.Mul(silu, up)
	return g.Add(x, e.proj(l, "down_proj", act))
}

// rope applies the half-split rotation: x·cos + rotate_half(x)·sin, rotate_half = [-x2, x1].
func (e *exporter) rope(x builder.Value, a attention) builder.Value {
	g := e.g
	half := int64(e.cfg.HeadDim / 2)
	parts := g.Split(x, -1, half, half)
	rot := g.Concat(-1, g.Neg(parts[1]), parts[0])
	return g.Add(g.Mul(x, a.cos), g.Mul(rot, a.sin))
}

// rmsNorm is x / sqrt(mean(x²) + eps) · w over the last axis.
func (e *exporter) rmsNorm(x builder.Value, weight string) builder.Value {
	g := e.g
	ms := g.ReduceMean(g.Mul(x, x), -1)
	inv := g.Reciprocal(g.Sqrt(g.Add(ms, g.Scalar(e.dt, e.cfg.RMSNormEps))))
	return g.Mul(g.Mul(x, inv), e.weight(weight))
}

// proj is the linear layer of one module, with its LoRA branch when the module is targeted.
func (e *exporter) proj(l int, module string, x builder.Value) builder.Value {
	g := e.g
	y := g.GemmTransB(x, e.weight(hf.LayerWeight(l, hf.ModulePath[module])))
	if !e.opt.LoRA.targets(module) {
		return y
	}
	a, _ := g.Lookup(loRAInput(l, module, "A"))
	b, _ := g.Lookup(loRAInput(l, module, "B"))
	if e.opt.LoRADropout > 0 {
		x = e.dropoutInput(l, module, x, a.Shape[1])
	}
	lora := g.GemmTransB(g.GemmTransB(x, a), b)
	return g.Add(y, g.Mul(lora, g.Scalar(e.dt, e.opt.LoRA.ModuleScaling(l, module))))
}

// dropoutInput is dropout(x) for the LoRA branch of module (l, module); in is x's width.
func (e *exporter) dropoutInput(l int, module string, x builder.Value, in builder.Dim) builder.Value {
	if e.drop == nil {
		e.drop = e.dropoutKeys(e.seed, x)
	}
	m, _ := e.opt.LoRA.ModuleIndex(l, module)
	keep := e.drop.keep(e.g, m, int(in.Size))
	return e.drop.apply(e.g, x, keep)
}
