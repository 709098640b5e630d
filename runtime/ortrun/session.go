package ortrun

import (
	"fmt"
	"reflect"
	goruntime "runtime"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// Device selects the execution provider.
type Device string

const (
	CPU  Device = "cpu"
	CUDA Device = "cuda"
)

// ParseDevice accepts "cpu" or "cuda".
func ParseDevice(s string) (Device, error) {
	switch Device(s) {
	case CPU, CUDA:
		return Device(s), nil
	}
	return "", fmt.Errorf("device %q: want cpu or cuda", s)
}

// SessionOptions configure one ONNX Runtime session.
type SessionOptions struct {
	Device     Device
	Threads    int // intra-op threads on CPU; 0 means one per core
	CUDADevice int
	// NoPrepack keeps ONNX Runtime from packing constant weights (initializers: --weights
	// in-place or converted) into copies of its own layout for its matrix kernels. The sessions
	// then compute from the weights where ONNX Runtime mapped them (measured with the float32
	// weight file), so two sessions over one file share one copy: the
	// training job's forward and backward sessions, at the Llama-3.2-1B shape, peak at 6.6 GiB
	// (PSS) instead of 10.1–10.4 GiB and start in 2.9 s instead of 16–18 s, for steps about 5%
	// slower (bear bench train, BEAR, one Office sequence, stash, 2 threads; two runs of each,
	// interleaved).
	NoPrepack bool
	// NoTF32 keeps the CUDA provider's float32 matrix products in float32 (ONNX Runtime uses
	// TF32 on GPUs that have it by default: faster, about 1e-3 relative error).
	NoTF32 bool
	// ProfilePrefix, when set, makes ONNX Runtime write a JSON trace of every run
	// (chrome://tracing format) to a file starting with this prefix.
	ProfilePrefix string
	// VaryingShapes turns ONNX Runtime's memory patterns off: it plans and keeps an arena
	// layout per distinct set of input shapes, which keeps growing when runs keep bringing new
	// shapes (training micro-batches). Measured on the small preset, MSL, 16 × ~350 tokens per
	// pass, 25 steps, one thread: peak RSS 2.9 GB off against 3.8 GB on (5.7 GB after 200
	// steps), CPU time within noise (134 s against 128 s).
	VaryingShapes bool
	// keepCasts keeps the graph's casts of weights where they are (weightPlan.newSession).
	keepCasts bool
}

// Session is an ONNX Runtime session over a graph whose inputs and outputs may vary in shape.
type Session struct {
	s       *ort.DynamicAdvancedSession
	Inputs  []string
	Outputs []string
	// resident are inputs bound to the same values on every run (mapped weights): RunNamed
	// binds them itself, and they do not count as bytes crossing (IOBytes).
	resident map[string]ort.Value
}

// bindResident makes every run read the session's inputs named in values from them.
func (s *Session) bindResident(values map[string]ort.Value) {
	for _, name := range s.Inputs {
		if v, ok := values[name]; ok {
			if s.resident == nil {
				s.resident = map[string]ort.Value{}
			}
			s.resident[name] = v
		}
	}
}

// NewSession loads a serialized model whose external data live in externalDir.
func NewSession(model []byte, externalDir string, inputs, outputs []string, o SessionOptions) (*Session, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", wrapORT(err))
	}
	defer opts.Destroy()
	threads := o.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	entries := [][2]string{
		// Tiny attention-gradient values made a layer about 2× slower without this (docs/design.md).
		{"session.set_denormal_as_zero", "1"},
		// The model is loaded from bytes, so ORT must be told where its external data live.
		{"session.model_external_initializers_file_folder_path", externalDir},
		{"optimization.disable_specified_optimizers", disabledOptimizers(o)},
	}
	if o.NoPrepack {
		entries = append(entries, [2]string{"session.disable_prepacking", "1"})
	}
	for _, kv := range entries {
		if err := opts.AddSessionConfigEntry(kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("session option %s: %w", kv[0], wrapORT(err))
		}
	}
	if o.ProfilePrefix != "" {
		if err := opts.EnableProfiling(o.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("enable profiling: %w", wrapORT(err))
		}
	}
	if o.VaryingShapes {
		if err := opts.SetMemPattern(false); err != nil {
			return nil, fmt.Errorf("session options: %w", wrapORT(err))
		}
	}
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("session options: %w", wrapORT(err))
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: %w", wrapORT(err))
	}
	switch o.Device {
	case CPU, "":
	case CUDA:
		if err := appendCUDA(opts, o); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("device %q: want cpu or cuda", o.Device)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
	if ce := diagnoseCUDA(err); err != nil && o.Device == CUDA && ce != nil {
		return nil, ce // the provider starts its device and its libraries with the session
	}
	if err != nil {
		return nil, fmt.Errorf("create session: %w", wrapORT(err))
	}
	return &Session{s: s, Inputs: inputs, Outputs: outputs}, nil
}

// disabledOptimizers lists the graph optimizers a session turns off: ORT fuses x·sigmoid(x)
// into com.microsoft.QuickGelu, which has no float64 kernel, and float64 graphs (gradient
// checks) then fail to load (the fused op saves little here). Graphs that cast weights kept at
// their stored precision where they use them (keepCasts) lose two more: constant folding would
// replace a cast initializer by a float32 copy made at load, and common-subexpression
// elimination would merge the backward's own cast of a weight with the forward recomputation's,
// keeping the float32 copy alive from one use to the other. ONNX Runtime 1.2x splits the list
// at semicolons (a comma-separated list disables nothing).
func disabledOptimizers(o SessionOptions) string {
	if o.keepCasts {
		return "QuickGeluFusion;ConstantFolding;CommonSubexpressionElimination"
	}
	return "QuickGeluFusion"
}

// ortNanos accumulates the wall time spent inside ONNX Runtime's Run, over all sessions, so
// that callers can tell how much of their time is Go's own.
var ortNanos atomic.Int64

// ORTTime is the total time spent inside ONNX Runtime runs so far, in this process.
func ORTTime() time.Duration { return time.Duration(ortNanos.Load()) }

// ioBytes accumulates the bytes of the Go-owned tensors bound as inputs and outputs of every
// run: on the CPU provider ONNX Runtime reads and writes them in place, on CUDA each crosses
// between host and device memory once per run.
var ioBytes atomic.Int64

// IOBytes is the total size of the tensors bound to ONNX Runtime runs so far, in this process.
func IOBytes() int64 { return ioBytes.Load() }

// valueBytes is the size of a tensor's Go buffer (0 for a value without one).
func valueBytes(v ort.Value) int64 {
	if v == nil {
		return 0
	}
	get := reflect.ValueOf(v).MethodByName("GetData")
	if !get.IsValid() || get.Type().NumIn() != 0 || get.Type().NumOut() != 1 || get.Type().Out(0).Kind() != reflect.Slice {
		return 0
	}
	data := get.Call(nil)[0]
	return int64(data.Len()) * int64(data.Type().Elem().Size())
}

// Run executes the graph; inputs and outputs are in the order of Inputs and Outputs, and
// outputs must be preallocated (ONNX Runtime writes into their Go buffers). Its errors are
// ONNX Runtime's, cleaned of terminal escape sequences.
func (s *Session) Run(inputs, outputs []ort.Value) error {
	var n int64
	for i, v := range inputs {
		if i < len(s.Inputs) && s.resident[s.Inputs[i]] != nil {
			continue // bound in place on every run, never copied
		}
		n += valueBytes(v)
	}
	for _, v := range outputs {
		n += valueBytes(v)
	}
	ioBytes.Add(n)
	t0 := time.Now()
	err := s.s.Run(inputs, outputs)
	ortNanos.Add(int64(time.Since(t0)))
	if err != nil {
		return fmt.Errorf("ONNX Runtime: %w", wrapORT(err))
	}
	return nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return wrapORT(err)
}
