package builder

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/bearrec/bear/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// DType is an ONNX tensor element type.
type DType = onnxpb.TensorProto_DataType

// Element types used by the exporters.
const (
	Float32  = onnxpb.TensorProto_FLOAT
	Float64  = onnxpb.TensorProto_DOUBLE
	Float16  = onnxpb.TensorProto_FLOAT16
	BFloat16 = onnxpb.TensorProto_BFLOAT16
	Int64    = onnxpb.TensorProto_INT64
	Bool     = onnxpb.TensorProto_BOOL
)

// IsFloat reports whether dt is a floating-point type (one that carries gradients).
func IsFloat(dt DType) bool {
	return dt == Float32 || dt == Float64 || dt == Float16 || dt == BFloat16
}

// opset is the ONNX operator set the builder emits: ReduceMean takes axes as an attribute,
// ReduceSum, Split, Squeeze and Unsqueeze take them as inputs; ScatterND and ScatterElements
// have the reduction attribute.
const (
	opset     = 17
	iRVersion = 8
)

// Value is a tensor in the graph under construction, with its static shape. Ints holds the
// values of small int64 tensors when they are known symbolically (shapes being assembled).
type Value struct {
	Name  string
	DType DType
	Shape Shape
	Ints  []Dim
}

// Rank is the number of axes.
func (v Value) Rank() int { return len(v.Shape) }

// Graph accumulates nodes, initializers, inputs and outputs.
type Graph struct {
	pb     *onnxpb.GraphProto
	prefix string
	seq    map[string]int
	consts map[string]Value
	values map[string]Value
	remat  map[string]bool
}

// New starts an empty graph.
func New(name string) *Graph {
	return &Graph{pb: &onnxpb.GraphProto{Name: proto.String(name)}, seq: map[string]int{},
		consts: map[string]Value{}, values: map[string]Value{}, remat: map[string]bool{}}
}

// MarkRematerializable records that v is cheap to compute again from its producer's inputs
// (an elementwise op over values that are kept anyway, or a mask hashed from a seed), so a
// pass that needs v later, such as a backward graph, should recompute it rather than keep it.
func (g *Graph) MarkRematerializable(v Value) Value {
	g.remat[v.Name] = true
	return v
}

// Rematerializable reports whether the value called name was marked by MarkRematerializable.
func (g *Graph) Rematerializable(name string) bool { return g.remat[name] }

// HoistRematerializable moves to the front of the graph, keeping their order, the nodes that
// compute marked values from graph inputs and initializers alone (casts of weights, rows
// gathered from them). ONNX Runtime's default execution order is a depth-first walk back from
// the outputs that visits a node's lower-numbered producers last, so it then runs each such node
// just before its first consumer: a weight cast to float32 lives around its use, not from the
// start of the run to its use.
func (g *Graph) HoistRematerializable() {
	ready := map[string]bool{"": true}
	for _, in := range g.pb.Input {
		ready[in.GetName()] = true
	}
	for _, t := range g.pb.Initializer {
		ready[t.GetName()] = true
	}
	var front, rest []*onnxpb.NodeProto
	for _, n := range g.pb.Node {
		hoist := len(n.Output) > 0
		for _, in := range n.Input {
			hoist = hoist && ready[in]
		}
		for _, o := range n.Output {
			hoist = hoist && g.remat[o]
		}
		if !hoist {
			rest = append(rest, n)
			continue
		}
		front = append(front, n)
		for _, o := range n.Output {
			ready[o] = true
		}
	}
	g.pb.Node = append(front, rest...)
}

// SetPrefix names the nodes created from now on "<prefix>/<op>_<n>", to keep graphs readable.
func (g *Graph) SetPrefix(p string) { g.prefix = p }

// Prefix is the current node-name prefix.
func (g *Graph) Prefix() string { return g.prefix }

// fresh names a node "<prefix>/<op>_<n>", the prefix defaulting to the graph's name so that
// nodes of graphs derived from one another (forward, backward) never collide.
func (g *Graph) fresh(op string) string {
	p := g.prefix
	if p == "" {
		p = g.pb.GetName()
	}
	key := p + "/" + op
	g.seq[key]++
	return p + "/" + op + "_" + strconv.Itoa(g.seq[key])
}

// Lookup returns a value of the graph by name.
func (g *Graph) Lookup(name string) (Value, bool) {
	v, ok := g.values[name]
	return v, ok
}

// Declare records a value produced elsewhere (an input of a derived graph) without adding it.
func (g *Graph) Declare(v Value) Value {
	g.values[v.Name] = v
	return v
}

// dimOf converts an int (fixed size) or a string (symbol) to a Dim.
func dimOf(d any) Dim {
	switch d := d.(type) {
	case int:
		return Fixed(int64(d))
	case int64:
		return Fixed(d)
	case string:
		return ParseDim(d)
	case Dim:
		return d
	}
	panic(fmt.Sprintf("builder: dimension %v is neither int nor string", d))
}

func valueInfo(name string, dt DType, shape Shape) *onnxpb.ValueInfoProto {
	sp := &onnxpb.TensorShapeProto{}
	for _, d := range shape {
		if !d.Known() {
			// No dim_param: ONNX Runtime takes equal dim_params for equal sizes, so two unrelated
			// unknown extents (data-dependent outputs) must not share the name "?".
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{})
			continue
		}
		if d.Static() {
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Size}})
		} else {
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.String()}})
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(dt)), Shape: sp}},
	}}
}

// Input declares a graph input; dims are ints (fixed) or strings (symbols such as "batch").
func (g *Graph) Input(name string, dt DType, dims ...any) Value {
	shape := make(Shape, len(dims))
	for i, d := range dims {
		shape[i] = dimOf(d)
	}
	return g.InputShaped(name, dt, shape)
}

// InputShaped declares a graph input of a given static shape.
func (g *Graph) InputShaped(name string, dt DType, shape Shape) Value {
	g.pb.Input = append(g.pb.Input, valueInfo(name, dt, shape))
	v := Value{Name: name, DType: dt, Shape: shape}
	g.values[name] = v
	return v
}

// Output declares v as a graph output called name (an Identity node renames it if needed).
func (g *Graph) Output(v Value, name string) Value {
	if v.Name != name {
		g.pb.Node = append(g.pb.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(g.fresh("Identity")),
			Input: []string{v.Name}, Output: []string{name}})
		v = Value{Name: name, DType: v.DType, Shape: v.Shape}
		g.values[name] = v
	}
	g.pb.Output = append(g.pb.Output, valueInfo(name, v.DType, v.Shape))
	return v
}

// Attr is a node attribute.
type Attr = *onnxpb.AttributeProto

// AttrInt is an integer attribute.
func AttrInt(name string, v int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// AttrInts is an integer-list attribute.
func AttrInts(name string, v ...int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// AttrFloat is a float attribute.
func AttrFloat(name string, v float32) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// attrString is a string attribute.
func attrString(name, v string) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// attrTensor is a tensor attribute (ConstantOfShape's value).
func attrTensor(name string, t *onnxpb.TensorProto) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// Node appends a node whose outputs have the given types and shapes, and returns them.
func (g *Graph) Node(op string, inputs []Value, outs []Value, attrs ...Attr) []Value {
	name := g.fresh(op)
	n := &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Attribute: attrs}
	for _, in := range inputs {
		n.Input = append(n.Input, in.Name)
	}
	res := make([]Value, len(outs))
	for i, o := range outs {
		o.Name = fmt.Sprintf("%s:%d", name, i)
		res[i] = o
		g.values[o.Name] = o
		n.Output = append(n.Output, o.Name)
	}
	g.pb.Node = append(g.pb.Node, n)
	return res
}

// op appends a node with one output.
func (g *Graph) op(op string, dt DType, shape Shape, inputs []Value, attrs ...Attr) Value {
	return g.Node(op, inputs, []Value{{DType: dt, Shape: shape}}, attrs...)[0]
}

func sameType(op string, vs ...Value) DType {
	for _, v := range vs[1:] {
		if v.DType != vs[0].DType {
			panic(fmt.Sprintf("builder: %s of %s (%v) and %s (%v)", op, vs[0].Name, vs[0].DType, v.Name, v.DType))
		}
	}
	return vs[0].DType
}

func (g *Graph) binary(op string, a, b Value) Value {
	return g.op(op, sameType(op, a, b), broadcast(a.Shape, b.Shape), []Value{a, b})
}

// Binary elementwise ops with numpy broadcasting.
func (g *Graph) Add(a, b Value) Value { return g.binary("Add", a, b) }
func (g *Graph) Sub(a, b Value) Value { return g.binary("Sub", a, b) }
func (g *Graph) Mul(a, b Value) Value { return g.binary("Mul", a, b) }
func (g *Graph) Div(a, b Value) Value { return g.binary("Div", a, b) }
func (g *Graph) Pow(a, b Value) Value {
	return g.op("Pow", a.DType, broadcast(a.Shape, b.Shape), []Value{a, b})
}

func (g *Graph) unary(op string, a Value) Value { return g.op(op, a.DType, a.Shape, []Value{a}) }

// Unary elementwise ops.
func (g *Graph) Neg(a Value) Value        { return g.unary("Neg", a) }
func (g *Graph) Sqrt(a Value) Value       { return g.unary("Sqrt", a) }
func (g *Graph) Reciprocal(a Value) Value { return g.unary("Reciprocal", a) }
func (g *Graph) Sigmoid(a Value) Value    { return g.unary("Sigmoid", a) }
func (g *Graph) Exp(a Value) Value        { return g.unary("Exp", a) }
func (g *Graph) Log(a Value) Value        { return g.unary("Log", a) }
func (g *Graph) Cos(a Value) Value        { return g.unary("Cos", a) }
func (g *Graph) Sin(a Value) Value        { return g.unary("Sin", a) }
func (g *Graph) Identity(a Value) Value   { return g.unary("Identity", a) }

// Comparisons and logic produce bool tensors.
func (g *Graph) Equal(a, b Value) Value {
	sameType("Equal", a, b)
	return g.op("Equal", Bool, broadcast(a.Shape, b.Shape), []Value{a, b})
}
func (g *Graph) LessOrEqual(a, b Value) Value {
	sameType("LessOrEqual", a, b)
	return g.op("LessOrEqual", Bool, broadcast(a.Shape, b.Shape), []Value{a, b})
}
func (g *Graph) And(a, b Value) Value {
	return g.op("And", Bool, broadcast(a.Shape, b.Shape), []Value{a, b})
}
func (g *Graph) Less(a, b Value) Value {
	sameType("Less", a, b)
	return g.op("Less", Bool, broadcast(a.Shape, b.Shape), []Value{a, b})
}
func (g *Graph) Not(a Value) Value { return g.op("Not", Bool, a.Shape, []Value{a}) }

// Mod is the remainder with the divisor's sign (ONNX Mod, fmod 0): for integers, a floor
// modulus, so a positive divisor gives a result in [0, b).
func (g *Graph) Mod(a, b Value) Value { return g.binary("Mod", a, b) }

// TopK returns the k (an int64 [1] tensor) largest (or smallest) values along axis and their
// indices, sorted; extent is the static size of axis in the result.
func (g *Graph) TopK(a, k Value, axis int64, largest bool, extent Dim) (values, indices Value) {
	sh := append(Shape(nil), a.Shape...)
	sh[NormAxis(axis, a.Rank())] = extent
	l := int64(0)
	if largest {
		l = 1
	}
	outs := g.Node("TopK", []Value{a, k}, []Value{{DType: a.DType, Shape: sh}, {DType: Int64, Shape: sh}},
		AttrInt("axis", axis), AttrInt("largest", l), AttrInt("sorted", 1))
	return outs[0], outs[1]
}

// CumSum is the inclusive running sum along axis.
func (g *Graph) CumSum(a Value, axis int64) Value {
	return g.op("CumSum", a.DType, a.Shape, []Value{a, g.ConstInt64([]int64{axis})})
}

// Compress keeps the slices of a along axis where cond (bool, 1-D) holds; their number is
// known only at run time.
func (g *Graph) Compress(a, cond Value, axis int64) Value {
	sh := append(Shape(nil), a.Shape...)
	sh[NormAxis(axis, a.Rank())] = Unknown
	return g.op("Compress", a.DType, sh, []Value{a, cond}, AttrInt("axis", axis))
}

// MatMul is numpy matmul with batch broadcasting (both operands of rank ≥ 2).
func (g *Graph) MatMul(a, b Value) Value {
	if a.Rank() < 2 || b.Rank() < 2 {
		panic("builder: MatMul needs operands of rank ≥ 2")
	}
	batch := broadcast(a.Shape[:a.Rank()-2], b.Shape[:b.Rank()-2])
	shape := append(batch, a.Shape[a.Rank()-2], b.Shape[b.Rank()-1])
	return g.op("MatMul", sameType("MatMul", a, b), shape, []Value{a, b})
}

// Gemm is alpha·op(a)·op(b) for 2-D operands, op transposing when asked.
func (g *Graph) Gemm(a, b Value, transA, transB bool) Value {
	m, n := a.Shape[0], b.Shape[1]
	if transA {
		m = a.Shape[1]
	}
	if transB {
		n = b.Shape[0]
	}
	var attrs []Attr
	if transA {
		attrs = append(attrs, AttrInt("transA", 1))
	}
	if transB {
		attrs = append(attrs, AttrInt("transB", 1))
	}
	return g.op("Gemm", sameType("Gemm", a, b), Shape{m, n}, []Value{a, b}, attrs...)
}

// GemmTransB is a·bᵀ for 2-D a [m,k] and b [n,k]: the layout of HF weights, without a Transpose.
func (g *Graph) GemmTransB(a, b Value) Value { return g.Gemm(a, b, false, true) }

// Softmax over one axis.
func (g *Graph) Softmax(a Value, axis int64) Value {
	return g.op("Softmax", a.DType, a.Shape, []Value{a}, AttrInt("axis", axis))
}

func reducedShape(s Shape, axes []int64, keep bool) Shape {
	drop := map[int]bool{}
	for _, a := range axes {
		drop[NormAxis(a, len(s))] = true
	}
	var out Shape
	for i, d := range s {
		switch {
		case !drop[i]:
			out = append(out, d)
		case keep:
			out = append(out, Fixed(1))
		}
	}
	return out
}

// ReduceMean over axes, keeping them (opset 17: axes is an attribute).
func (g *Graph) ReduceMean(a Value, axes ...int64) Value {
	return g.op("ReduceMean", a.DType, reducedShape(a.Shape, axes, true), []Value{a}, AttrInts("axes", axes...), AttrInt("keepdims", 1))
}

// ReduceSum over axes (an input since opset 13).
func (g *Graph) ReduceSum(a Value, keep bool, axes ...int64) Value {
	k := int64(0)
	if keep {
		k = 1
	}
	return g.op("ReduceSum", a.DType, reducedShape(a.Shape, axes, keep), []Value{a, g.ConstInt64(axes, int64(len(axes)))}, AttrInt("keepdims", k))
}

// Cast converts to dt.
func (g *Graph) Cast(a Value, dt DType) Value {
	if a.DType == dt {
		return a
	}
	return g.op("Cast", dt, a.Shape, []Value{a}, AttrInt("to", int64(dt)))
}

// Reshape to a constant shape (0 copies a dimension, -1 is inferred).
func (g *Graph) Reshape(a Value, shape ...int64) Value {
	dims := make([]Dim, len(shape))
	for i, s := range shape {
		dims[i] = Fixed(s)
	}
	c := g.ConstInt64(shape, int64(len(shape)))
	c.Ints = dims
	return g.ReshapeTo(a, c)
}

// ReshapeTo reshapes to a shape given as a tensor; its static shape follows from the tensor's
// known values (Ints), with 0 copying and -1 inferring as ONNX does.
func (g *Graph) ReshapeTo(a, shape Value) Value {
	var out Shape
	if shape.Ints != nil {
		out = make(Shape, len(shape.Ints))
		infer := -1
		known := Fixed(1)
		for i, d := range shape.Ints {
			switch {
			case d.Static() && d.Size == 0:
				out[i] = a.Shape[i]
			case !d.Known(): // the literal -1 (or a value unknown here): inferred from the rest
				infer = i
				continue
			default:
				out[i] = d
			}
			known = known.Mul(out[i])
		}
		if infer >= 0 {
			out[infer] = a.Shape.Numel().Div(known)
		}
	} else {
		n := int(shape.Shape[0].Size)
		if !shape.Shape[0].Static() {
			panic("builder: ReshapeTo with a shape tensor of unknown length")
		}
		out = make(Shape, n)
		for i := range out {
			out[i] = Unknown
		}
	}
	return g.op("Reshape", a.DType, out, []Value{a, shape})
}

// Transpose permutes axes.
func (g *Graph) Transpose(a Value, perm ...int64) Value {
	out := make(Shape, len(perm))
	for i, p := range perm {
		out[i] = a.Shape[p]
	}
	return g.op("Transpose", a.DType, out, []Value{a}, AttrInts("perm", perm...))
}

// Unsqueeze inserts axes of size 1 (axes refer to the output).
func (g *Graph) Unsqueeze(a Value, axes ...int64) Value {
	rank := a.Rank() + len(axes)
	ins := map[int]bool{}
	for _, ax := range axes {
		ins[NormAxis(ax, rank)] = true
	}
	out := make(Shape, 0, rank)
	j := 0
	for i := 0; i < rank; i++ {
		if ins[i] {
			out = append(out, Fixed(1))
		} else {
			out = append(out, a.Shape[j])
			j++
		}
	}
	v := g.op("Unsqueeze", a.DType, out, []Value{a, g.ConstInt64(axes, int64(len(axes)))})
	if a.Ints != nil && a.Rank() == 0 {
		v.Ints = a.Ints
		g.values[v.Name] = v
	}
	return v
}

// Squeeze removes the given axes of size 1.
func (g *Graph) Squeeze(a Value, axes ...int64) Value {
	v := g.op("Squeeze", a.DType, reducedShape(a.Shape, axes, false), []Value{a, g.ConstInt64(axes, int64(len(axes)))})
	if a.Ints != nil && v.Rank() <= 1 {
		v.Ints = a.Ints
		g.values[v.Name] = v
	}
	return v
}

// Concat joins along axis.
func (g *Graph) Concat(axis int64, vs ...Value) Value {
	ax := NormAxis(axis, vs[0].Rank())
	out := append(Shape(nil), vs[0].Shape...)
	sum := Fixed(0)
	var ints []Dim
	for _, v := range vs {
		d := v.Shape[ax]
		switch {
		case sum.Static() && d.Static():
			sum = Fixed(sum.Size + d.Size)
		case sum.Static() && sum.Size == 0:
			sum = d
		default:
			sum = Unknown
		}
		if ints != nil || (v.Ints != nil && len(vs[0].Shape) == 1) {
			if v.Ints == nil {
				ints = nil
			} else {
				ints = append(ints, v.Ints...)
			}
		}
	}
	out[ax] = sum
	val := g.op("Concat", sameType("Concat", vs...), out, vs, AttrInt("axis", axis))
	allInts := vs[0].Rank() == 1
	for _, v := range vs {
		allInts = allInts && v.Ints != nil
	}
	if allInts {
		val.Ints = ints
		g.values[val.Name] = val
	}
	return val
}

// Split cuts a along axis into pieces of the given sizes.
func (g *Graph) Split(a Value, axis int64, sizes ...int64) []Value {
	ax := NormAxis(axis, a.Rank())
	outs := make([]Value, len(sizes))
	for i, s := range sizes {
		sh := append(Shape(nil), a.Shape...)
		sh[ax] = Fixed(s)
		outs[i] = Value{DType: a.DType, Shape: sh}
	}
	return g.Node("Split", []Value{a, g.ConstInt64(sizes, int64(len(sizes)))}, outs, AttrInt("axis", axis))
}

// SplitBy cuts a along axis into pieces whose sizes are the values of sizes (an int64 [k]
// tensor); shapes gives each piece's static extent on that axis.
func (g *Graph) SplitBy(a Value, axis int64, sizes Value, extents []Dim) []Value {
	ax := NormAxis(axis, a.Rank())
	outs := make([]Value, len(extents))
	for i, e := range extents {
		sh := append(Shape(nil), a.Shape...)
		sh[ax] = e
		outs[i] = Value{DType: a.DType, Shape: sh}
	}
	return g.Node("Split", []Value{a, sizes}, outs, AttrInt("axis", axis))
}

// Gather takes slices of data along axis at indices.
func (g *Graph) Gather(data, indices Value, axis int64) Value {
	ax := NormAxis(axis, data.Rank())
	out := append(append(append(Shape(nil), data.Shape[:ax]...), indices.Shape...), data.Shape[ax+1:]...)
	return g.op("Gather", data.DType, out, []Value{data, indices}, AttrInt("axis", axis))
}

// GatherElements picks data[..., indices[...], ...] along axis.
func (g *Graph) GatherElements(data, indices Value, axis int64) Value {
	return g.op("GatherElements", data.DType, indices.Shape, []Value{data, indices}, AttrInt("axis", axis))
}

// ScatterElementsAdd adds updates into data at indices along axis.
func (g *Graph) ScatterElementsAdd(data, indices, updates Value, axis int64) Value {
	return g.op("ScatterElements", data.DType, data.Shape, []Value{data, indices, updates}, AttrInt("axis", axis), attrString("reduction", "add"))
}

// ScatterNDAdd adds updates into data at the index tuples of indices.
func (g *Graph) ScatterNDAdd(data, indices, updates Value) Value {
	return g.op("ScatterND", data.DType, data.Shape, []Value{data, indices, updates}, attrString("reduction", "add"))
}

// Where selects x where cond holds, else y.
func (g *Graph) Where(cond, x, y Value) Value {
	return g.op("Where", sameType("Where", x, y), broadcast(cond.Shape, x.Shape, y.Shape), []Value{cond, x, y})
}

// Expand broadcasts a to shape (an int64 tensor); static is the result's static shape.
func (g *Graph) Expand(a, shape Value, static Shape) Value {
	return g.op("Expand", a.DType, static, []Value{a, shape})
}

// Shape of a tensor, as int64; its known values are a's static dims.
func (g *Graph) Shape(a Value) Value {
	v := g.op("Shape", Int64, Shape{Fixed(int64(a.Rank()))}, []Value{a})
	v.Ints = append([]Dim(nil), a.Shape...)
	g.values[v.Name] = v
	return v
}

// ShapeDim is dimension i of a, as an int64 tensor of shape [1].
func (g *Graph) ShapeDim(a Value, i int64) Value {
	v := g.op("Shape", Int64, Shape{Fixed(1)}, []Value{a}, AttrInt("start", i), AttrInt("end", i+1))
	v.Ints = []Dim{a.Shape[NormAxis(i, a.Rank())]}
	g.values[v.Name] = v
	return v
}

// Size is the number of elements of a, as a rank-0 int64.
func (g *Graph) Size(a Value) Value { return g.op("Size", Int64, Shape{}, []Value{a}) }

// Range is [start, limit) with step delta, from scalar tensors.
func (g *Graph) Range(start, limit, delta Value) Value {
	var n Dim = Unknown
	if start.Ints != nil && limit.Ints != nil && delta.Ints != nil && start.Ints[0].IsZero() && delta.Ints[0].IsOne() {
		n = limit.Ints[0]
	}
	return g.op("Range", sameType("Range", start, limit, delta), Shape{n}, []Value{start, limit, delta})
}

// Zeros is a tensor of the given shape filled with zeros of dtype dt (ConstantOfShape).
func (g *Graph) Zeros(dt DType, shape Value, static Shape) Value {
	return g.op("ConstantOfShape", dt, static, []Value{shape}, attrTensor("value", scalarProto(dt, 0)))
}

// Pad pads a with zeros; pads is an int64 tensor [2·rank] (all begins, then all ends).
func (g *Graph) Pad(a, pads Value, static Shape) Value {
	return g.op("Pad", a.DType, static, []Value{a, pads})
}

// Slice is ONNX Slice with tensor inputs; static is the result's static shape.
func (g *Graph) Slice(a, starts, ends, axes Value, static Shape) Value {
	return g.op("Slice", a.DType, static, []Value{a, starts, ends, axes})
}

// Op appends an arbitrary single-output node whose output has the given type and shape.
func (g *Graph) Op(op string, dt DType, shape Shape, inputs []Value, attrs ...Attr) Value {
	return g.op(op, dt, shape, inputs, attrs...)
}

func scalarProto(dt DType, v float64) *onnxpb.TensorProto {
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(dt)), Dims: []int64{1}}
	switch dt {
	case Float32:
		t.RawData = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
	case Float64:
		t.RawData = binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
	case Int64:
		t.RawData = binary.LittleEndian.AppendUint64(nil, uint64(int64(v)))
	default:
		panic(fmt.Sprintf("builder: scalar of %v", dt))
	}
	return t
}

// ConstInt64 is an int64 constant initializer (deduplicated by value); its values are known.
func (g *Graph) ConstInt64(vals []int64, dims ...int64) Value {
	raw := make([]byte, 8*len(vals))
	ints := make([]Dim, len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		ints[i] = Fixed(v)
	}
	v := g.constRaw(Int64, raw, dims)
	v.Ints = ints
	g.values[v.Name] = v
	return v
}

// ConstFloat is a floating-point constant of dtype dt (Float32 or Float64).
func (g *Graph) ConstFloat(dt DType, vals []float64, dims ...int64) Value {
	var raw []byte
	switch dt {
	case Float32:
		raw = make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
		}
	case Float64:
		raw = make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
		}
	default:
		panic(fmt.Sprintf("builder: ConstFloat of %v", dt))
	}
	return g.constRaw(dt, raw, dims)
}

// Scalar is a rank-0 floating-point constant.
func (g *Graph) Scalar(dt DType, v float64) Value { return g.ConstFloat(dt, []float64{v}) }

func (g *Graph) constRaw(dt DType, raw []byte, dims []int64) Value {
	key := fmt.Sprint(dt, dims, string(raw))
	if v, ok := g.consts[key]; ok {
		return v
	}
	name := fmt.Sprintf("%s.const_%d", g.pb.GetName(), len(g.consts))
	g.pb.Initializer = append(g.pb.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims, RawData: raw,
	})
	shape := make(Shape, len(dims))
	for i, d := range dims {
		shape[i] = Fixed(d)
	}
	v := Value{Name: name, DType: dt, Shape: shape}
	g.consts[key] = v
	g.values[name] = v
	return v
}

// AddInitializer copies an initializer (from another graph) into this one.
func (g *Graph) AddInitializer(t *onnxpb.TensorProto) Value {
	g.pb.Initializer = append(g.pb.Initializer, t)
	v := initializerValue(t)
	g.values[v.Name] = v
	return v
}

func initializerValue(t *onnxpb.TensorProto) Value {
	shape := make(Shape, len(t.Dims))
	for i, d := range t.Dims {
		shape[i] = Fixed(d)
	}
	return Value{Name: t.GetName(), DType: DType(t.GetDataType()), Shape: shape}
}

// External declares an initializer whose bytes live in a file beside the model (ONNX external
// data): location is relative to the folder ONNX Runtime is told to read external data from.
func (g *Graph) External(name string, dt DType, dims []int64, location string, offset, length int64) Value {
	kv := func(k, v string) *onnxpb.StringStringEntryProto {
		return &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
	}
	return g.AddInitializer(&onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims,
		DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*onnxpb.StringStringEntryProto{
			kv("location", location), kv("offset", strconv.FormatInt(offset, 10)), kv("length", strconv.FormatInt(length, 10)),
		},
	})
}

// AppendNode copies a node of another graph whose inputs are already values of this one; its
// outputs take the given values' types and shapes under the node's own output names.
func (g *Graph) AppendNode(n *onnxpb.NodeProto, outs []Value) {
	g.pb.Node = append(g.pb.Node, n)
	for i, name := range n.Output {
		o := outs[i]
		o.Name = name
		g.values[name] = o
	}
}

// Model wraps the graph in a ModelProto for the default ONNX domain at opset, with value_info
// giving every intermediate value's static shape (symbolic dims as dim_param).
func (g *Graph) Model(producer string) *onnxpb.ModelProto {
	g.pb.ValueInfo = g.pb.ValueInfo[:0]
	isIO := map[string]bool{}
	for _, v := range g.pb.Input {
		isIO[v.GetName()] = true
	}
	for _, v := range g.pb.Output {
		isIO[v.GetName()] = true
	}
	for _, n := range g.pb.Node {
		for _, o := range n.Output {
			if v, ok := g.values[o]; ok && !isIO[o] {
				g.pb.ValueInfo = append(g.pb.ValueInfo, valueInfo(o, v.DType, v.Shape))
			}
		}
	}
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(iRVersion),
		ProducerName: proto.String(producer),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph:        g.pb,
	}
}

// Proto exposes the graph for passes that read it.
func (g *Graph) Proto() *onnxpb.GraphProto { return g.pb }
