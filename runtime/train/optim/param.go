package optim

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/blas/blas32"
)

// Param is one trainable tensor, flattened: Value is the float32 master copy that the
// optimizer updates in place, Grad its gradient (same length), written in place by the
// caller before each step. Name identifies the tensor in checkpoints (PEFT's key, say).
type Param struct {
	Name  string
	Value []float32
	Grad  []float32
}

// validateParams checks what every consumer of a parameter list relies on: at least one
// parameter (torch refuses an empty list too), non-empty unique names, and a gradient of
// the value's length.
func validateParams(params []Param) error {
	if len(params) == 0 {
		return errors.New("no parameters")
	}
	seen := make(map[string]int, len(params))
	for i, p := range params {
		if p.Name == "" {
			return fmt.Errorf("parameter %d has no name", i)
		}
		if j, dup := seen[p.Name]; dup {
			return fmt.Errorf("parameters %d and %d are both named %q", j, i, p.Name)
		}
		seen[p.Name] = i
		if len(p.Grad) != len(p.Value) {
			return fmt.Errorf("parameter %q: gradient has %d values, the value %d", p.Name, len(p.Grad), len(p.Value))
		}
	}
	return nil
}

// scale multiplies x by alpha in float32, as torch's Tensor.mul_ with a Python scalar does.
// gonum's Scal writes zeros when alpha is 0 (the BLAS convention), which would turn an
// infinite or NaN element into 0 where IEEE multiplication (and torch) gives NaN; so
// alpha 0 takes the plain loop.
func scale(alpha float32, x []float32) {
	if alpha != 0 {
		blas32.Scal(alpha, blas32.Vector{N: len(x), Inc: 1, Data: x})
		return
	}
	for i := range x {
		x[i] *= 0
	}
}
