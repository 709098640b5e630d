package ortrun

import (
	"errors"
	"fmt"
	"sync"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	ort "github.com/yalue/onnxruntime_go"
)

// WeightSource says where a session's graph reads the frozen base weights from (docs/design.md,
// "One copy of the weights").
type WeightSource string

const (
	// WeightsAuto is WeightsMapped on the CPU and WeightsInPlace on CUDA.
	WeightsAuto WeightSource = ""
	// WeightsMapped: the weights are graph inputs at their stored precision, bound to one
	// read-only mapping of the checkpoint's files per process, which every session of the
	// process shares; the graphs cast them to the compute dtype where they are used. Nothing is
	// converted or copied, and the process's resident memory counts the weights once.
	WeightsMapped WeightSource = "mapped"
	// WeightsInPlace: the weights are initializers at their stored precision, external data
	// read by ONNX Runtime from the checkpoint's files, cast where they are used. Each session
	// loads its own: on CUDA, one device copy per session, made when it starts (a bf16 copy for
	// a bf16 checkpoint); weights bound as inputs would cross to the device on every run.
	WeightsInPlace WeightSource = "in-place"
	// WeightsWidened: the weights are read once into float32 copies in the process's memory,
	// which every session of the process shares as inputs (no file is written). The decoder
	// runs a few rows per step, so a cast of every weight at every step would cost more than
	// the step: it widens once instead (the 1B shape: 0.036 users/s mapped, 0.073 converted).
	WeightsWidened WeightSource = "widened"
	// WeightsConverted: the weights are initializers in the compute dtype, converted once into
	// the cache folder when the checkpoint stores another dtype (the reference path the others
	// are checked against).
	WeightsConverted WeightSource = "converted"
)

// sources lists the weight sources by name, for errors.
const sources = "mapped, widened, in-place or converted"

// ParseWeightSource accepts "" (WeightsAuto), "mapped", "widened", "in-place" or "converted".
func ParseWeightSource(s string) (WeightSource, error) {
	switch w := WeightSource(s); w {
	case WeightsAuto, WeightsMapped, WeightsWidened, WeightsInPlace, WeightsConverted:
		return w, nil
	}
	return "", fmt.Errorf("%q: want %s", s, sources)
}

// resolve resolves WeightsAuto for the device and the graph (decoding or not), and refuses
// unknown sources and float32 copies for another compute dtype.
func (w WeightSource) resolve(d Device, decoding bool, dt hf.DType) (WeightSource, error) {
	switch w {
	case WeightsAuto:
		switch {
		case d == CUDA:
			return WeightsInPlace, nil
		case decoding:
			return WeightsWidened, nil
		}
		return WeightsMapped, nil
	case WeightsWidened:
		if dt != hf.F32 {
			return "", fmt.Errorf("ortrun.ModelOptions.Weights %s: the copies are float32, the graphs compute in %s", w, dt)
		}
		return w, nil
	case WeightsMapped, WeightsInPlace, WeightsConverted:
		return w, nil
	}
	_, err := ParseWeightSource(string(w))
	return "", fmt.Errorf("ortrun.ModelOptions.Weights %w", err)
}

// weightPlan is how one model's graphs get their frozen weights.
type weightPlan struct {
	binding  *llama.WeightBinding // initializers (in place or converted); nil when resident
	resident *residentWeights     // mapped or widened: the values every session binds
}

// planWeights prepares the frozen weights of ck for graphs computing in dt (a decoder's when
// decoding). Release the plan after closing the sessions that use it.
func planWeights(ck *hf.Checkpoint, mo ModelOptions, dt hf.DType, decoding bool) (*weightPlan, error) {
	src, err := mo.Weights.resolve(mo.Device, decoding, dt)
	if err != nil {
		return nil, err
	}
	switch src {
	case WeightsMapped, WeightsWidened:
		r, err := acquireResident(ck, src == WeightsWidened)
		if err != nil {
			return nil, err
		}
		return &weightPlan{resident: r}, nil
	case WeightsInPlace:
		if b, ok := llama.BindStored(ck); ok {
			return &weightPlan{binding: b}, nil
		}
	}
	b, err := bindWeights(ck, dt, mo.CacheDir)
	if err != nil {
		return nil, err
	}
	return &weightPlan{binding: b}, nil
}

// inputs reports whether the graphs take the weights as inputs (llama.Options.StoredWeightInputs)
// and in which dtype when it is not the checkpoint's (llama.Options.FrozenDType).
func (p *weightPlan) inputs() (bool, hf.DType) {
	if p.resident == nil {
		return false, ""
	}
	if p.resident.widened {
		return true, hf.F32
	}
	return true, ""
}

// exportOptions sets the weight options of graphs built for this plan.
func (p *weightPlan) exportOptions(o llama.Options) llama.Options {
	o.StoredWeightInputs, o.FrozenDType = p.inputs()
	return o
}

// externalDir is the folder the graphs' external data are relative to ("" when mapped).
func (p *weightPlan) externalDir() string {
	if p.binding == nil {
		return ""
	}
	return p.binding.Dir
}

// castsWeights reports whether the graphs cast the weights to dt where they use them.
func (p *weightPlan) castsWeights(dt hf.DType) bool {
	switch {
	case p.resident != nil:
		return !p.resident.widened || dt != hf.F32
	case p.binding == nil:
		return false
	}
	for _, r := range p.binding.Refs {
		if r.DType != "" && r.DType != dt {
			return true
		}
	}
	return false
}

// newSession creates a session over a graph of this plan that computes in dt: casts of weights
// are kept where the graph puts them (SessionOptions.keepCasts), and mapped or widened weights
// are bound on every run.
func (p *weightPlan) newSession(model []byte, externalDir string, inputs, outputs []string, so SessionOptions, dt hf.DType) (*Session, error) {
	so.keepCasts = so.keepCasts || p.castsWeights(dt)
	s, err := NewSession(model, externalDir, inputs, outputs, so)
	if err != nil {
		return nil, err
	}
	if p.resident != nil {
		s.bindResident(p.resident.values)
	}
	return s, nil
}

// release gives the mapping back (once its last user releases it, it is unmapped).
func (p *weightPlan) release() {
	if p != nil && p.resident != nil {
		p.resident.release()
		p.resident = nil
	}
}

// residentWeights are one checkpoint's weights held by the process (mapped, or widened to
// float32) and an ONNX Runtime value over each, shared by every session of the process that
// computes from that checkpoint.
type residentWeights struct {
	key     string
	widened bool
	mapped  *hf.MappedWeights
	values  map[string]ort.Value
	refs    int
}

// residents holds the mapped checkpoints of this process by the state of their files.
var residents = struct {
	sync.Mutex
	m map[string]*residentWeights
}{m: map[string]*residentWeights{}}

// acquireResident maps ck's weights (or widens them to float32 copies), or shares what another
// model of this process holds.
func acquireResident(ck *hf.Checkpoint, widened bool) (*residentWeights, error) {
	key, err := ck.FilesState()
	if err != nil {
		return nil, err
	}
	key += fmt.Sprintf("widened %v\n", widened)
	residents.Lock()
	defer residents.Unlock()
	if r := residents.m[key]; r != nil {
		r.refs++
		return r, nil
	}
	hold := ck.Map
	if widened {
		hold = ck.Widen
	}
	mapped, err := hold()
	if err != nil {
		return nil, err
	}
	r := &residentWeights{key: key, widened: widened, mapped: mapped, values: map[string]ort.Value{}, refs: 1}
	for name, data := range mapped.Tensors {
		t := ck.Weights[name]
		dt := t.DType
		if widened {
			dt = hf.F32
		}
		v, err := ort.NewCustomDataTensor(ort.NewShape(t.Shape...), data, ortElementType(dt))
		if err != nil {
			r.free()
			return nil, fmt.Errorf("%s: tensor %s: %w", t.File, name, wrapORT(err))
		}
		r.values[name] = v
	}
	residents.m[key] = r
	return r, nil
}

// release drops one reference; the last one destroys the values and unmaps the files.
func (r *residentWeights) release() {
	residents.Lock()
	defer residents.Unlock()
	if r.refs--; r.refs == 0 {
		delete(residents.m, r.key)
		r.free()
	}
}

func (r *residentWeights) free() error {
	var errs []error
	for _, v := range r.values {
		errs = append(errs, v.Destroy())
	}
	r.values = nil
	errs = append(errs, r.mapped.Close())
	return errors.Join(errs...)
}

// ortElementType is ONNX Runtime's element type of a floating-point safetensors dtype.
func ortElementType(d hf.DType) ort.TensorElementDataType {
	switch d {
	case hf.F32:
		return ort.TensorElementDataTypeFloat
	case hf.F64:
		return ort.TensorElementDataTypeDouble
	case hf.F16:
		return ort.TensorElementDataTypeFloat16
	case hf.BF16:
		return ort.TensorElementDataTypeBFloat16
	}
	return ort.TensorElementDataTypeUndefined
}
