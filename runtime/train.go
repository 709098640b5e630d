package runtime

import (
	"fmt"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"google.golang.org/protobuf/proto"
)

// TrainOptions configure a Trainer.
type TrainOptions struct {
	Model  ModelOptions
	Policy autodiff.Policy
	// Full trains every base weight (they become graph inputs held in Go); with LoRA set as well,
	// the LoRA matrices are trained too.
	Full bool
}

// TrainGraphs are the serialized forward and backward graphs of one training setup.
type TrainGraphs struct {
	Forward, Backward []byte
	Built             *llama.Built
	Diff              *autodiff.Result
	Trainable         []string // graph inputs that receive gradients, in order
	ExternalDir       string
	Checkpoint        *hf.Checkpoint
}

// BuildTrainGraphs exports the forward graph and differentiates it with respect to the LoRA
// matrices (and every weight with Full).
func BuildTrainGraphs(dir string, o TrainOptions) (*TrainGraphs, error) {
	mo := o.Model
	if mo.DType == "" {
		mo.DType = hf.F32
	}
	if mo.LoRA == nil && !o.Full {
		return nil, fmt.Errorf("nothing to train: give a LoRA spec or train the full model")
	}
	ck, err := hf.Open(dir)
	if err != nil {
		return nil, err
	}
	var b *llama.WeightBinding
	if !o.Full {
		if mo.CacheDir == "" {
			if mo.CacheDir, err = defaultCacheDir(dir); err != nil {
				return nil, err
			}
		}
		if b, err = llama.BindWeights(ck, mo.DType, mo.CacheDir); err != nil {
			return nil, err
		}
	}
	bt, err := llama.BuildForward(ck, b, llama.Options{DType: mo.DType, LoRA: mo.LoRA, Logits: mo.Logits, WeightsAsInputs: o.Full})
	if err != nil {
		return nil, err
	}
	var wrt []string
	for _, in := range bt.LoRAInputs {
		wrt = append(wrt, in.Name)
	}
	if o.Full {
		for _, spec := range ck.Config.ExpectedWeights() {
			wrt = append(wrt, spec.Name)
		}
	}
	res, err := autodiff.Differentiate(bt.Graph, llama.Logits, wrt, o.Policy)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	fwd, err := proto.Marshal(bt.Graph.Model("bear"))
	if err != nil {
		return nil, err
	}
	bwd, err := proto.Marshal(res.Backward.Model("bear"))
	if err != nil {
		return nil, err
	}
	tg := &TrainGraphs{Forward: fwd, Backward: bwd, Built: bt, Diff: res, Trainable: wrt, Checkpoint: ck}
	if b != nil {
		tg.ExternalDir = b.Dir
	} else {
		tg.ExternalDir = dir
	}
	return tg, nil
}

// Float is the compute element type of a Trainer.
type Float interface{ float32 | float64 }

// Trainer runs one training step's forward and backward passes on ONNX Runtime. Trainable
// values (LoRA matrices, and every weight with Full) live in Go buffers that ORT reads in place;
// under Stash the residuals do too.
type Trainer[T Float] struct {
	Graphs   *TrainGraphs
	Config   hf.Config
	fwd, bwd *Session
	// Params holds every trainable graph input (and, with Full, also the frozen… none: all weights).
	Params map[string][]T
	shapes map[string][]int64
	// per-step buffers
	inputs    map[string]Tensor
	outputs   map[string]Tensor
	grads     map[string][]T
	syms      map[string]int64
	logitsLen int
}

// NewTrainer builds the graphs and creates both sessions. LoRA matrices start at zero (load an
// adapter with SetParams); with Full, the weights are read from the checkpoint.
func NewTrainer[T Float](dir string, o TrainOptions) (*Trainer[T], error) {
	var zero T
	want := hf.F32
	if any(zero) == any(float64(0)) {
		want = hf.F64
	}
	if o.Model.DType == "" {
		o.Model.DType = want
	}
	if o.Model.DType != want {
		return nil, fmt.Errorf("trainer element type does not match compute dtype %s", o.Model.DType)
	}
	tg, err := BuildTrainGraphs(dir, o)
	if err != nil {
		return nil, err
	}
	fwdOut := []string{llama.Logits}
	for _, r := range tg.Diff.Residuals {
		fwdOut = append(fwdOut, r.Name)
	}
	fs, err := NewSession(tg.Forward, tg.ExternalDir, tg.Built.Inputs, fwdOut, o.Model.Session)
	if err != nil {
		return nil, fmt.Errorf("%s: forward: %w", dir, err)
	}
	var bIn, bOut []string
	for _, v := range tg.Diff.Inputs {
		bIn = append(bIn, v.Name)
	}
	for _, v := range tg.Diff.Grads {
		bOut = append(bOut, v.Name)
	}
	bs, err := NewSession(tg.Backward, tg.ExternalDir, bIn, bOut, o.Model.Session)
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("%s: backward: %w", dir, err)
	}
	t := &Trainer[T]{Graphs: tg, Config: tg.Checkpoint.Config, fwd: fs, bwd: bs, Params: map[string][]T{}, shapes: map[string][]int64{}, grads: map[string][]T{}}
	for _, in := range tg.Built.LoRAInputs {
		t.Params[in.Name] = make([]T, in.Rows*in.Cols)
		t.shapes[in.Name] = []int64{int64(in.Rows), int64(in.Cols)}
	}
	if o.Full {
		for _, spec := range tg.Checkpoint.Config.ExpectedWeights() {
			w := tg.Checkpoint.Weights[spec.Name]
			vals, err := readAs[T](w)
			if err != nil {
				t.Close()
				return nil, err
			}
			t.Params[spec.Name] = vals
			t.shapes[spec.Name] = spec.Shape
		}
	}
	for _, name := range tg.Trainable {
		t.grads[name] = make([]T, len(t.Params[name]))
	}
	return t, nil
}

func readAs[T Float](w hf.TensorInfo) ([]T, error) {
	var zero T
	if any(zero) == any(float64(0)) {
		v, err := w.ReadFloat64()
		return any(v).([]T), err
	}
	v, err := w.ReadFloat32()
	return any(v).([]T), err
}

// Close releases both sessions.
func (t *Trainer[T]) Close() {
	t.fwd.Close()
	t.bwd.Close()
}

// Forward runs the forward pass and returns the logits at index ([n, vocab], or [n, c] with
// candidates). Under Stash it also fills the residual buffers the next Backward reads.
func (t *Trainer[T]) Forward(b Batch, index []int64, cands []int64, c int) ([]T, error) {
	n := len(index)
	t.syms = map[string]int64{"batch": int64(b.B), "seq": int64(b.T), "n": int64(n), "c": int64(c)}
	width := int64(t.Config.VocabSize)
	if t.Graphs.Built.Options.Logits == llama.LogitsCandidates {
		width = int64(c)
		if c <= 0 || len(cands) != n*c {
			return nil, fmt.Errorf("candidates: %d ids for %d positions × %d", len(cands), n, c)
		}
	}
	bt := []int64{int64(b.B), int64(b.T)}
	t.inputs = map[string]Tensor{
		llama.InputIDs: {bt, b.IDs}, llama.AttentionMask: {bt, b.Mask}, llama.PositionIDs: {bt, b.Pos},
		llama.LogitIndex: {[]int64{int64(n)}, index},
	}
	if cands != nil {
		t.inputs[llama.Candidates] = Tensor{[]int64{int64(n), int64(c)}, cands}
	}
	for name, p := range t.Params {
		t.inputs[name] = Tensor{t.shapes[name], p}
	}
	logits := make([]T, int64(n)*width)
	t.outputs = map[string]Tensor{llama.Logits: {[]int64{int64(n), width}, logits}}
	for _, r := range t.Graphs.Diff.Residuals {
		s, err := r.Shape.Eval(t.syms)
		if err != nil {
			return nil, fmt.Errorf("residual %s: %w", r.Name, err)
		}
		t.outputs[r.Name] = newTensorOfType(r.DType, s)
	}
	if err := t.fwd.RunNamed(t.inputs, t.outputs); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return logits, nil
}

// Backward runs the backward pass for the cotangent of the logits of the last Forward and
// returns the gradients by trainable name (buffers reused across steps).
func (t *Trainer[T]) Backward(cotangent []T) (map[string][]T, error) {
	if t.outputs == nil {
		return nil, fmt.Errorf("Backward before Forward")
	}
	lt := t.outputs[llama.Logits]
	if len(cotangent) != len(lt.Data.([]T)) {
		return nil, fmt.Errorf("cotangent has %d values, logits %d", len(cotangent), len(lt.Data.([]T)))
	}
	in := map[string]Tensor{}
	for k, v := range t.inputs {
		in[k] = v
	}
	for _, r := range t.Graphs.Diff.Residuals {
		in[r.Name] = t.outputs[r.Name]
	}
	in[autodiff.GradName(llama.Logits)] = Tensor{lt.Shape, cotangent}
	out := map[string]Tensor{}
	for _, name := range t.Graphs.Trainable {
		out[autodiff.GradName(name)] = Tensor{t.shapes[name], t.grads[name]}
	}
	if err := t.bwd.RunNamed(in, out); err != nil {
		return nil, fmt.Errorf("backward: %w", err)
	}
	return t.grads, nil
}

func newTensorOfType(dt builder.DType, shape []int64) Tensor {
	switch dt {
	case builder.Float32:
		return NewTensorLike([]float32(nil), shape)
	case builder.Float64:
		return NewTensorLike([]float64(nil), shape)
	case builder.Int64:
		return NewTensorLike([]int64(nil), shape)
	case builder.Bool:
		return NewTensorLike([]bool(nil), shape)
	}
	panic(fmt.Sprint("runtime: tensor of ", dt))
}

// SetAdapter copies an adapter's matrices into the trainable LoRA buffers.
func (t *Trainer[T]) SetAdapter(a *Adapter) error {
	spec := t.Graphs.Built.Options.LoRA
	if spec == nil {
		return fmt.Errorf("trainer has no LoRA inputs")
	}
	if err := sameSpec(a.Spec, *spec); err != nil {
		return err
	}
	for _, in := range t.Graphs.Built.LoRAInputs {
		src := a.Weights[in.Name]
		dst := t.Params[in.Name]
		if len(src) != len(dst) {
			return fmt.Errorf("adapter matrix %s has %d values, want %d", in.Name, len(src), len(dst))
		}
		for i, v := range src {
			dst[i] = T(v)
		}
	}
	return nil
}
