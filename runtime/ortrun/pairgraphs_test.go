package ortrun

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"google.golang.org/protobuf/proto"
)

// The vocabulary-subset and dropout tests build their forward and backward graphs themselves
// (llama.BuildForward, autodiff.Differentiate) and run them through NewSession and RunNamed,
// so that they exercise the graphs independently of the Trainer.

type pairFloat interface{ float32 | float64 }

// pairGraphs is a forward graph, its backward graph, their sessions and the trainable inputs.
type pairGraphs[T pairFloat] struct {
	fwd, bwd   *Session
	fwdOutputs []builder.Value // logits, residuals (Stash), then the extra outputs asked for
	res        *autodiff.Result
	params     map[string]Tensor // trainable inputs by name: LoRA matrices, weights
	wrt        []string
	inputs     []string
	outputs    map[string]Tensor // forward output buffers, reused while their shapes stay
}

// pairTiny writes the `tiny` preset (vocab 128 256) with hf's init code, weights large enough
// that every layer matters and norm weights away from 1; tied or untied head.
func pairTiny(t testing.TB, tied bool) string {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	p.Config.TieWordEmbeddings = tied
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 7, DType: hf.F32, Std: 0.08, NormJitter: 0.1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildPair exports the forward graph of dir with opt (DType set from T), differentiates it
// with respect to the LoRA matrices (and every weight when they are inputs), lets extra add
// forward outputs (it sees the graph and the dropout masks), and opens both sessions. LoRA
// matrices get normal entries of standard deviation 0.2 (A and B both non-zero).
func buildPair[T pairFloat](t testing.TB, dir string, opt llama.Options, policy autodiff.Policy, threads int,
	extra func(g *builder.Graph, masks []builder.Value) []builder.Value) *pairGraphs[T] {
	t.Helper()
	opt.DType = hf.F32
	var zero T
	if any(zero) == any(float64(0)) {
		opt.DType = hf.F64
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b *llama.WeightBinding
	extDir := dir
	if !opt.WeightsAsInputs {
		if b, err = llama.BindWeights(ck, opt.DType, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		extDir = b.Dir
	}
	bt, err := llama.BuildForward(ck, b, opt)
	if err != nil {
		t.Fatal(err)
	}
	p := &pairGraphs[T]{params: map[string]Tensor{}, inputs: bt.Inputs}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, in := range bt.LoRAInputs {
		p.wrt = append(p.wrt, in.Name)
		p.params[in.Name] = pairRandom[T](rng, 0.2, int64(in.Rows), int64(in.Cols))
	}
	if opt.WeightsAsInputs {
		for _, spec := range ck.Config.ExpectedWeights() {
			p.wrt = append(p.wrt, spec.Name)
			p.params[spec.Name] = pairWeight[T](t, ck.Weights[spec.Name], spec.Shape)
		}
	}
	if p.res, err = autodiff.Differentiate(bt.Graph, llama.Logits, p.wrt, policy); err != nil {
		t.Fatal(err)
	}
	logits, _ := bt.Graph.Lookup(llama.Logits)
	p.fwdOutputs = append([]builder.Value{logits}, p.res.Residuals...)
	if extra != nil {
		var masks []builder.Value // the keep masks by module index, found by name
		for m := 0; ; m++ {
			v, ok := bt.Graph.Lookup(llama.DropoutMaskName(m))
			if !ok {
				break
			}
			masks = append(masks, v)
		}
		p.fwdOutputs = append(p.fwdOutputs, extra(bt.Graph, masks)...)
	}
	p.openSessions(t, bt.Graph, extDir, threads)
	return p
}

func (p *pairGraphs[T]) openSessions(t testing.TB, fwd *builder.Graph, extDir string, threads int) {
	t.Helper()
	fb, err := proto.Marshal(fwd.Model("test"))
	if err != nil {
		t.Fatal(err)
	}
	bb, err := proto.Marshal(p.res.Backward.Model("test"))
	if err != nil {
		t.Fatal(err)
	}
	so := SessionOptions{Threads: threads}
	if p.fwd, err = NewSession(fb, extDir, p.inputs, pairNames(p.fwdOutputs), so); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.fwd.Close() })
	if p.bwd, err = NewSession(bb, extDir, pairNames(p.res.Inputs), pairNames(p.res.Grads), so); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.bwd.Close() })
}

func pairNames(vs []builder.Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

func pairRandom[T pairFloat](rng *rand.Rand, std float64, shape ...int64) Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	v := make([]T, n)
	for i := range v {
		v[i] = T(std * rng.NormFloat64())
	}
	return Tensor{shape, v}
}

func pairWeight[T pairFloat](t testing.TB, w hf.TensorInfo, shape []int64) Tensor {
	t.Helper()
	var zero T
	var data any
	var err error
	if any(zero) == any(float64(0)) {
		data, err = w.ReadFloat64()
	} else {
		data, err = w.ReadFloat32()
	}
	if err != nil {
		t.Fatal(err)
	}
	return Tensor{shape, data}
}

// pairBatch is one batch of graph inputs.
type pairBatch struct {
	batch, seq int
	in         map[string]Tensor
}

// newPairBatch left-pads the sequences, as transformers does, and asks for logits at the last
// `last` real tokens of each sequence.
func newPairBatch(seqs [][]int64, last int) pairBatch {
	b := pairBatch{batch: len(seqs)}
	for _, s := range seqs {
		b.seq = max(b.seq, len(s))
	}
	ids, mask, pos := make([]int64, b.batch*b.seq), make([]int64, b.batch*b.seq), make([]int64, b.batch*b.seq)
	var index []int64
	for i, s := range seqs {
		pad := b.seq - len(s)
		for t := range b.seq {
			k := i*b.seq + t
			if t < pad {
				pos[k] = 1
				continue
			}
			ids[k], mask[k], pos[k] = s[t-pad], 1, int64(t-pad)
			if t >= b.seq-last {
				index = append(index, int64(k))
			}
		}
	}
	bt := []int64{int64(b.batch), int64(b.seq)}
	b.in = map[string]Tensor{llama.InputIDs: {bt, ids}, llama.AttentionMask: {bt, mask}, llama.PositionIDs: {bt, pos},
		llama.LogitIndex: {[]int64{int64(len(index))}, index}}
	return b
}

// with is the batch with one more (or one replaced) int64 [len(v)] input.
func (b pairBatch) with(name string, v []int64) pairBatch {
	in := map[string]Tensor{}
	for k, t := range b.in {
		in[k] = t
	}
	in[name] = Tensor{[]int64{int64(len(v))}, v}
	b.in = in
	return b
}

func (b pairBatch) syms() map[string]int64 {
	s := map[string]int64{"batch": int64(b.batch), "seq": int64(b.seq), "n": b.in[llama.LogitIndex].Shape[0]}
	if u, ok := b.in[llama.VocabSubset]; ok {
		s["u"] = u.Shape[0]
	}
	return s
}

// forward runs the forward graph and returns its outputs by name (buffers the next forward
// of the same shapes reuses: a training step does not reallocate its residuals either).
func (p *pairGraphs[T]) forward(t testing.TB, b pairBatch) map[string]Tensor {
	t.Helper()
	in := map[string]Tensor{}
	for k, v := range b.in {
		in[k] = v
	}
	for k, v := range p.params {
		in[k] = v
	}
	if p.outputs == nil {
		p.outputs = map[string]Tensor{}
	}
	out := p.outputs
	for _, o := range p.fwdOutputs {
		shape, err := o.Shape.Eval(b.syms())
		if err != nil {
			t.Fatal(err)
		}
		if old, ok := out[o.Name]; !ok || !slices.Equal(old.Shape, shape) {
			out[o.Name] = pairTensor(o.DType, shape)
		}
	}
	if err := p.fwd.RunNamed(in, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// logits runs the forward graph and returns the logits.
func (p *pairGraphs[T]) logits(t testing.TB, b pairBatch) []T {
	return p.forward(t, b)[llama.Logits].Data.([]T)
}

// gradients runs forward and backward for the cotangent cot of the logits and returns the
// gradients by trainable name.
func (p *pairGraphs[T]) gradients(t testing.TB, b pairBatch, cot []T) map[string][]T {
	t.Helper()
	return p.backward(t, b, p.forward(t, b), cot)
}

// backward runs the backward graph after the forward run that returned fo.
func (p *pairGraphs[T]) backward(t testing.TB, b pairBatch, fo map[string]Tensor, cot []T) map[string][]T {
	t.Helper()
	in := map[string]Tensor{autodiff.GradName(llama.Logits): {fo[llama.Logits].Shape, cot}}
	for k, v := range b.in {
		in[k] = v
	}
	for k, v := range p.params {
		in[k] = v
	}
	for _, r := range p.res.Residuals {
		in[r.Name] = fo[r.Name]
	}
	out, grads := map[string]Tensor{}, map[string][]T{}
	for _, name := range p.wrt {
		g := make([]T, len(p.params[name].Data.([]T)))
		out[autodiff.GradName(name)], grads[name] = Tensor{p.params[name].Shape, g}, g
	}
	if err := p.bwd.RunNamed(in, out); err != nil {
		t.Fatal(err)
	}
	return grads
}

// pairRelDiff is max |a-b| / max |b|.
func pairRelDiff[T pairFloat](a, b []T) float64 {
	diff, scale := 0.0, 0.0
	for i := range b {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff / scale
}

// pairSequences are two sequences of different lengths (the shorter one is left-padded).
var pairSequences = [][]int64{{128000, 791, 3938, 315, 9822, 374}, {128000, 40, 1093, 279, 5030, 13, 3938, 128001}}

// pairTensor is a zeroed tensor of an ONNX element type.
func pairTensor(dt builder.DType, shape []int64) Tensor {
	like := map[builder.DType]any{builder.Float32: []float32(nil), builder.Float64: []float64(nil),
		builder.Int64: []int64(nil), builder.Bool: []bool(nil)}[dt]
	return NewTensorLike(like, shape)
}
