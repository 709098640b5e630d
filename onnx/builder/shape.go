package builder

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Dim is one static dimension: Size times the product of the symbolic axes in Syms (for example
// batch·seq after flattening). Size -1 means unknown. Symbolic axes are assumed to be larger
// than 1 for broadcasting, which holds for every graph the exporters build: they broadcast only
// along axes that are 1 by construction.
type Dim struct {
	Size int64
	Syms []string // sorted
}

// Fixed is a dimension of known size.
func Fixed(n int64) Dim { return Dim{Size: n} }

// sym is a symbolic dimension such as "batch".
func sym(name string) Dim { return Dim{Size: 1, Syms: []string{name}} }

// Unknown is a dimension nothing is known about.
var Unknown = Dim{Size: -1}

// Known reports whether the dimension is a constant or a product of symbols.
func (d Dim) Known() bool { return d.Size >= 0 }

// IsOne reports whether the dimension is statically 1.
func (d Dim) IsOne() bool { return d.Size == 1 && len(d.Syms) == 0 }

// Static reports whether the dimension is a plain number.
func (d Dim) Static() bool { return d.Size >= 0 && len(d.Syms) == 0 }

// Mul is the product of two dimensions.
func (d Dim) Mul(e Dim) Dim {
	if !d.Known() || !e.Known() {
		return Unknown
	}
	syms := append(append([]string(nil), d.Syms...), e.Syms...)
	sort.Strings(syms)
	return Dim{Size: d.Size * e.Size, Syms: syms}
}

// Div is d / e when it is exact, else Unknown.
func (d Dim) Div(e Dim) Dim {
	if !d.Known() || !e.Known() || e.Size == 0 || d.Size%e.Size != 0 {
		return Unknown
	}
	rest := append([]string(nil), d.Syms...)
	for _, s := range e.Syms {
		i := sort.SearchStrings(rest, s)
		if i == len(rest) || rest[i] != s {
			return Unknown
		}
		rest = append(rest[:i], rest[i+1:]...)
	}
	return Dim{Size: d.Size / e.Size, Syms: rest}
}

// Equal compares two known dimensions symbolically.
func (d Dim) Equal(e Dim) bool {
	if !d.Known() || !e.Known() || d.Size != e.Size || len(d.Syms) != len(e.Syms) {
		return false
	}
	for i := range d.Syms {
		if d.Syms[i] != e.Syms[i] {
			return false
		}
	}
	return true
}

// String is the ONNX dim_param spelling: "batch*seq", "4*n", or "?" when unknown.
func (d Dim) String() string {
	if !d.Known() {
		return "?"
	}
	parts := append([]string(nil), d.Syms...)
	if d.Size != 1 || len(parts) == 0 {
		parts = append([]string{strconv.FormatInt(d.Size, 10)}, parts...)
	}
	return strings.Join(parts, "*")
}

// ParseDim reads the String form back.
func ParseDim(s string) Dim {
	if s == "" || s == "?" || strings.HasPrefix(s, "?") {
		return Unknown
	}
	d := Dim{Size: 1}
	for _, p := range strings.Split(s, "*") {
		if n, err := strconv.ParseInt(p, 10, 64); err == nil {
			d.Size *= n
		} else {
			d.Syms = append(d.Syms, p)
		}
	}
	sort.Strings(d.Syms)
	return d
}

// Eval computes the dimension's size given the symbols' values.
func (d Dim) Eval(syms map[string]int64) (int64, error) {
	if !d.Known() {
		return 0, fmt.Errorf("dimension is unknown")
	}
	n := d.Size
	for _, s := range d.Syms {
		v, ok := syms[s]
		if !ok {
			return 0, fmt.Errorf("no value for symbolic dimension %q", s)
		}
		n *= v
	}
	return n, nil
}

// Shape is a static shape (its rank is always known).
type Shape []Dim

// Eval computes the concrete sizes, the symbolic dimensions given by syms.
func (s Shape) Eval(syms map[string]int64) ([]int64, error) {
	out := make([]int64, len(s))
	for i, d := range s {
		v, err := d.Eval(syms)
		if err != nil {
			return nil, fmt.Errorf("axis %d of %v: %w", i, s, err)
		}
		out[i] = v
	}
	return out, nil
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Numel is the product of the dimensions.
func (s Shape) Numel() Dim {
	n := Fixed(1)
	for _, d := range s {
		n = n.Mul(d)
	}
	return n
}

// broadcast is numpy's rule on static shapes.
func broadcast(shapes ...Shape) Shape {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = Fixed(1)
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d.IsOne():
			case o.IsOne():
				*o = d
			case o.Equal(d):
			case !d.Known() || !o.Known():
				*o = Unknown
			default:
				panic(fmt.Sprintf("builder: cannot broadcast %v", shapes))
			}
		}
	}
	return out
}

// NormAxis maps a possibly negative axis into [0, rank).
func NormAxis(axis int64, rank int) int {
	a := int(axis)
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		panic(fmt.Sprintf("builder: axis %d out of range for rank %d", axis, rank))
	}
	return a
}

// IsZero reports whether the dimension is statically 0.
func (d Dim) IsZero() bool { return d.Size == 0 && len(d.Syms) == 0 }
