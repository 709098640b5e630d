package ortrun

import (
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/onnx/traingraph"
)

// TrainOptions configure the training graphs.
type TrainOptions struct {
	Model  ModelOptions
	Policy autodiff.Policy
	// Full trains every base weight (they become graph inputs held in Go); with LoRA set as well,
	// the LoRA matrices are trained too.
	Full bool
	// LoRADropout is PEFT's lora_dropout: the forward graph then takes a dropout seed per run.
	LoRADropout float64
}

// ComputeFloat is the compute element type of a Trainer.
type ComputeFloat interface{ float32 | float64 }

// Trainer runs one training step's forward and backward passes on ONNX Runtime. Trainable
// values (LoRA matrices, and every weight with Full) live in Go buffers that ORT reads in place;
// under Stash the residuals do too.
type Trainer[T ComputeFloat] struct {
	Manifest *traingraph.Manifest
	Config   hf.Config
	fwd, bwd *Session
	weights  *weightPlan
	// Params holds every trainable graph input by name.
	Params  map[string][]T
	shapes  map[string][]int64
	inputs  map[string]Tensor
	outputs map[string]Tensor
	grads   map[string][]T
}

// NewTrainer builds the graphs from a checkpoint and creates both sessions. LoRA matrices start
// at zero (load an adapter with SetAdapter); with Full, the weights are read from the checkpoint.
func NewTrainer[T ComputeFloat](ck *hf.Checkpoint, o TrainOptions) (*Trainer[T], error) {
	if o.Model.DType == "" {
		o.Model.DType = dtypeOf[T]()
	}
	w, tg, err := buildTrainGraphs(ck, o)
	if err != nil {
		return nil, err
	}
	return newTrainer[T](tg, w, o.Model.SessionOptions)
}

// BuildTrainGraphs binds ck's frozen weights as o.Model.Weights says (converting them into
// o.Model.CacheDir if need be) and builds the training graphs (package traingraph). Graphs
// whose weights are mapped (manifest FrozenInputs) read them from the checkpoint when a trainer
// loads them.
func BuildTrainGraphs(ck *hf.Checkpoint, o TrainOptions) (*traingraph.Graphs, error) {
	w, tg, err := buildTrainGraphs(ck, o)
	w.release()
	return tg, err
}

// buildTrainGraphs is BuildTrainGraphs keeping the weights it planned (nil for full training,
// whose weights are trained values held in Go).
func buildTrainGraphs(ck *hf.Checkpoint, o TrainOptions) (*weightPlan, *traingraph.Graphs, error) {
	mo := o.Model
	if mo.DType == "" {
		mo.DType = hf.F32
	}
	w := &weightPlan{}
	if !o.Full {
		var err error
		if w, err = planWeights(ck, mo, mo.DType, false); err != nil {
			return nil, nil, err
		}
	}
	frozen, frozenDType := w.inputs()
	tg, err := traingraph.Build(ck, w.binding, traingraph.Options{DType: mo.DType, LoRA: mo.LoRA, Logits: mo.Logits,
		Policy: o.Policy, Full: o.Full, LoRADropout: o.LoRADropout, FrozenInputs: frozen, FrozenDType: frozenDType})
	if err != nil {
		w.release()
		return nil, nil, err
	}
	return w, tg, nil
}

func dtypeOf[T ComputeFloat]() hf.DType {
	var zero T
	if any(zero) == any(float64(0)) {
		return hf.F64
	}
	return hf.F32
}

// newTrainer creates the sessions of tg; w holds the weights the graphs read (the plan they were
// built with, or nil to plan them from the manifest). The trainer owns w: Close releases it, and
// so does a failure here.
func newTrainer[T ComputeFloat](tg *traingraph.Graphs, w *weightPlan, so SessionOptions) (_ *Trainer[T], err error) {
	defer func() {
		if err != nil {
			w.release()
		}
	}()
	m := tg.Manifest
	if hf.DType(m.DType) != dtypeOf[T]() {
		return nil, fmt.Errorf("graphs compute in %s, trainer holds %s", m.DType, dtypeOf[T]())
	}
	cfg, err := hf.ReadConfig(m.Checkpoint)
	if err != nil {
		return nil, err
	}
	if w == nil {
		if w, err = manifestWeights(m); err != nil {
			return nil, err
		}
	}
	so.NoPrepack = true // the two sessions share the mapped weights instead of packing a copy each
	dt := hf.DType(m.DType)
	fs, err := w.newSession(tg.Forward, m.ExternalDataDir, traingraph.Names(m.ForwardInputs), traingraph.Names(m.ForwardOutputs), so, dt)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	bs, err := w.newSession(tg.Backward, m.ExternalDataDir, traingraph.Names(m.BackwardInputs), traingraph.Names(m.BackwardOutputs), so, dt)
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("backward: %w", err)
	}
	t := &Trainer[T]{Manifest: m, Config: cfg, fwd: fs, bwd: bs, weights: w, Params: map[string][]T{}, shapes: map[string][]int64{}, grads: map[string][]T{}}
	for _, in := range m.LoRAInputs {
		t.Params[in.Name] = make([]T, in.Rows*in.Cols)
		t.shapes[in.Name] = []int64{int64(in.Rows), int64(in.Cols)}
	}
	if m.Train == traingraph.Full {
		ck, err := hf.Open(m.Checkpoint)
		if err != nil {
			t.Close()
			return nil, err
		}
		for _, spec := range cfg.ExpectedWeights() {
			vals, err := readAs[T](ck.Weights[spec.Name])
			if err != nil {
				t.Close()
				return nil, err
			}
			t.Params[spec.Name] = vals
			t.shapes[spec.Name] = spec.Shape
		}
	}
	for _, name := range m.Trainable {
		t.grads[name] = make([]T, len(t.Params[name]))
	}
	return t, nil
}

func readAs[T ComputeFloat](w hf.TensorInfo) ([]T, error) {
	var zero T
	if any(zero) == any(float64(0)) {
		v, err := w.ReadFloat64()
		return any(v).([]T), err
	}
	v, err := w.ReadFloat32()
	return any(v).([]T), err
}

// manifestWeights plans the weights of graphs loaded from artifacts: the checkpoint's mapping when
// they take frozen inputs, nothing otherwise (their initializers name their data).
func manifestWeights(m *traingraph.Manifest) (*weightPlan, error) {
	if len(m.FrozenInputs) == 0 {
		return &weightPlan{}, nil
	}
	ck, err := hf.Open(m.Checkpoint)
	if err != nil {
		return nil, err
	}
	r, err := acquireResident(ck, m.FrozenDType != "")
	if err != nil {
		return nil, err
	}
	return &weightPlan{resident: r}, nil
}

// Close releases both sessions and the weights.
func (t *Trainer[T]) Close() {
	t.fwd.Close()
	t.bwd.Close()
	t.weights.release()
}

// Forward runs the forward pass and returns the logits at in.Index ([n, vocab], [n, C] with
// candidates, [n, u] with a vocabulary subset). Under Stash it also fills the residual buffers
// the next Backward reads. The returned slice is reused by the next Forward of the same shape.
func (t *Trainer[T]) Forward(in GraphInputs) ([]T, error) {
	n, m := len(in.Index), t.Manifest
	syms := map[string]int64{"batch": int64(in.Batch.B), "seq": int64(in.Batch.T), "n": int64(n), "c": int64(in.C), "u": int64(len(in.Subset))}
	switch {
	case m.Logits == llama.LogitsCandidates && (in.C <= 0 || len(in.Candidates) != n*in.C):
		return nil, fmt.Errorf("candidates: %d ids for %d positions × %d", len(in.Candidates), n, in.C)
	case m.Logits == llama.LogitsSubset && len(in.Subset) == 0:
		return nil, fmt.Errorf("vocabulary subset: no token ids")
	}
	t.inputs = in.tensors(m.LoRADropout > 0)
	for name, p := range t.Params {
		t.inputs[name] = Tensor{t.shapes[name], p}
	}
	// Output and residual buffers are reused, resliced when the shape changes (they grow to the
	// largest shape and stay): reallocating and zeroing hundreds of MiB of residuals every step
	// cost more than some layers, and bloated the Go heap when shapes alternate.
	if err := t.sizeOutputs(syms); err != nil {
		return nil, err
	}
	if err := t.fwd.RunNamed(t.inputs, t.outputs); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return t.outputs[llama.Logits].Data.([]T), nil
}

// sizeOutputs gives every forward output a buffer of its shape under syms. Buffers too small
// are all dropped, and their memory returned, before any larger one is allocated: otherwise the
// old residuals (1.1 GiB at the Llama-3.2-1B shape under Stash) would stay beside the new ones
// until the next collection.
func (t *Trainer[T]) sizeOutputs(syms map[string]int64) error {
	if t.outputs == nil {
		t.outputs = map[string]Tensor{}
	}
	shapes := map[string][]int64{}
	var dropped int64
	for _, o := range t.Manifest.ForwardOutputs {
		s, err := o.Eval(syms)
		if err != nil {
			return err
		}
		shapes[o.Name] = s
		if old, ok := t.outputs[o.Name]; ok && !old.fits(s) {
			dropped += old.bytes()
			delete(t.outputs, o.Name)
		}
	}
	if dropped > 64<<20 {
		debug.FreeOSMemory()
	}
	for _, o := range t.Manifest.ForwardOutputs {
		s := shapes[o.Name]
		old, ok := t.outputs[o.Name]
		switch {
		case !ok:
			t.outputs[o.Name] = newTensorOfType(o.ElemType(), s)
		case !slices.Equal(old.Shape, s):
			t.outputs[o.Name] = old.reshaped(s)
		}
	}
	return nil
}

// Backward runs the backward pass for the cotangent of the logits of the last Forward and
// returns the gradients by trainable name (buffers reused across steps).
func (t *Trainer[T]) Backward(cotangent []T) (map[string][]T, error) {
	if t.inputs == nil {
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
	for _, name := range t.Manifest.Residuals {
		in[name] = t.outputs[name]
	}
	in[autodiff.GradName(llama.Logits)] = Tensor{lt.Shape, cotangent}
	out := map[string]Tensor{}
	for _, name := range t.Manifest.Trainable {
		out[autodiff.GradName(name)] = Tensor{t.shapes[name], t.grads[name]}
	}
	if err := t.bwd.RunNamed(in, out); err != nil {
		return nil, fmt.Errorf("backward: %w", err)
	}
	return t.grads, nil
}

// SetAdapter copies an adapter's matrices into the trainable LoRA buffers.
func (t *Trainer[T]) SetAdapter(a *peft.Adapter) error {
	return copyAdapter(t.Params, t.Manifest.LoRAInputs, t.Manifest.LoRA, a)
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
