package ortrun

import (
	"fmt"
	"reflect"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor is a Go-owned host buffer with its shape; Data is a []float32, []float64, []int64 or
// []bool. ONNX Runtime reads inputs and writes outputs in place: no copies cross the boundary.
type Tensor struct {
	Shape []int64
	Data  any
}

// NewTensorLike allocates a zeroed tensor of the element type of like ([]float32 etc.).
func NewTensorLike(like any, shape []int64) Tensor {
	n := elements(shape)
	switch like.(type) {
	case []float32:
		return Tensor{shape, make([]float32, n)}
	case []float64:
		return Tensor{shape, make([]float64, n)}
	case []int64:
		return Tensor{shape, make([]int64, n)}
	case []bool:
		return Tensor{shape, make([]bool, n)}
	}
	panic(fmt.Sprintf("runtime: tensor of %T", like))
}

// reshaped returns a tensor of shape that reuses t's buffer when it is large enough (the values
// are not cleared: for output buffers ONNX Runtime overwrites them) and allocates one of t's
// element type otherwise, so that buffers cycling through a few shapes stop allocating once
// they have held the largest.
func (t Tensor) reshaped(shape []int64) Tensor {
	if !t.fits(shape) {
		return NewTensorLike(t.Data, shape)
	}
	return Tensor{shape, reflect.ValueOf(t.Data).Slice(0, int(elements(shape))).Interface()}
}

// fits reports whether t's buffer can hold a tensor of shape (reshaped reuses it).
func (t Tensor) fits(shape []int64) bool {
	return int64(reflect.ValueOf(t.Data).Cap()) >= elements(shape)
}

// bytes is the size of t's buffer.
func (t Tensor) bytes() int64 {
	v := reflect.ValueOf(t.Data)
	return int64(v.Cap()) * int64(v.Type().Elem().Size())
}

// elements is the number of elements of a tensor of shape.
func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func (t Tensor) value() (ort.Value, error) {
	s := ort.NewShape(t.Shape...)
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewTensor(s, d)
	case []float64:
		return ort.NewTensor(s, d)
	case []int64:
		return ort.NewTensor(s, d)
	case []bool:
		return ort.NewTensor(s, d)
	}
	return nil, fmt.Errorf("tensor of %T", t.Data)
}

// RunNamed runs the session with inputs and preallocated outputs given by name, in the order
// of s.Inputs and s.Outputs.
func (s *Session) RunNamed(inputs, outputs map[string]Tensor) error {
	var vals, made []ort.Value
	defer func() {
		for _, v := range made {
			v.Destroy()
		}
	}()
	bind := func(names []string, tensors map[string]Tensor, resident map[string]ort.Value, what, missing string) error {
		for _, name := range names {
			if v, ok := resident[name]; ok {
				vals = append(vals, v)
				continue
			}
			t, ok := tensors[name]
			if !ok {
				return fmt.Errorf("graph %s %s has no %s", what, name, missing)
			}
			v, err := t.value()
			if err != nil {
				return fmt.Errorf("%s %s: %w", what, name, err)
			}
			vals = append(vals, v)
			made = append(made, v)
		}
		return nil
	}
	if err := bind(s.Inputs, inputs, s.resident, "input", "value"); err != nil {
		return err
	}
	nIn := len(vals)
	if err := bind(s.Outputs, outputs, nil, "output", "buffer"); err != nil {
		return err
	}
	return s.Run(vals[:nIn], vals[nIn:])
}
