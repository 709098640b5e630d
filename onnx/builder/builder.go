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

// Opset is the ONNX operator set the builder emits (ReduceMean/ReduceSum with axes as attributes
// and inputs respectively, Split with sizes as an input).
const (
	Opset     = 17
	IRVersion = 8
)

// Value is a tensor in the graph under construction.
type Value struct {
	Name  string
	DType DType
}

// Graph accumulates nodes, initializers, inputs and outputs.
type Graph struct {
	pb     *onnxpb.GraphProto
	prefix string
	seq    map[string]int
	consts map[string]Value
}

// New starts an empty graph.
func New(name string) *Graph {
	return &Graph{pb: &onnxpb.GraphProto{Name: proto.String(name)}, seq: map[string]int{}, consts: map[string]Value{}}
}

// SetPrefix names the nodes created from now on "<prefix>/<op>_<n>", to keep graphs readable.
func (g *Graph) SetPrefix(p string) { g.prefix = p }

func (g *Graph) fresh(op string) string {
	key := g.prefix + "/" + op
	g.seq[key]++
	if g.prefix == "" {
		return op + "_" + strconv.Itoa(g.seq[key])
	}
	return g.prefix + "/" + op + "_" + strconv.Itoa(g.seq[key])
}

// Dim is one dimension of an input or output: an int for a fixed size, a string for a symbol.
type Dim = any

func valueInfo(name string, dt DType, dims []Dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case int64:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		default:
			panic(fmt.Sprintf("builder: dimension %v of %s is neither int nor string", d, name))
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(dt)), Shape: shape}},
	}}
}

// Input declares a graph input.
func (g *Graph) Input(name string, dt DType, dims ...Dim) Value {
	g.pb.Input = append(g.pb.Input, valueInfo(name, dt, dims))
	return Value{name, dt}
}

// Output declares v as a graph output called name (an Identity node renames it if needed).
func (g *Graph) Output(v Value, name string, dims ...Dim) Value {
	if v.Name != name {
		g.pb.Node = append(g.pb.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(g.fresh("Identity")),
			Input: []string{v.Name}, Output: []string{name}})
		v = Value{name, v.DType}
	}
	g.pb.Output = append(g.pb.Output, valueInfo(name, v.DType, dims))
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

// Node appends a node with len(outTypes) outputs and returns them. Empty input names stand for
// omitted optional inputs.
func (g *Graph) Node(op string, inputs []Value, outTypes []DType, attrs ...Attr) []Value {
	name := g.fresh(op)
	n := &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Attribute: attrs}
	for _, in := range inputs {
		n.Input = append(n.Input, in.Name)
	}
	outs := make([]Value, len(outTypes))
	for i, dt := range outTypes {
		outs[i] = Value{fmt.Sprintf("%s:%d", name, i), dt}
		n.Output = append(n.Output, outs[i].Name)
	}
	g.pb.Node = append(g.pb.Node, n)
	return outs
}

// op appends a node with one output of dtype dt.
func (g *Graph) op(op string, dt DType, inputs []Value, attrs ...Attr) Value {
	return g.Node(op, inputs, []DType{dt}, attrs...)[0]
}

func sameType(op string, vs ...Value) DType {
	for _, v := range vs[1:] {
		if v.DType != vs[0].DType {
			panic(fmt.Sprintf("builder: %s of %s (%v) and %s (%v)", op, vs[0].Name, vs[0].DType, v.Name, v.DType))
		}
	}
	return vs[0].DType
}

// Binary elementwise ops with numpy broadcasting.
func (g *Graph) Add(a, b Value) Value { return g.op("Add", sameType("Add", a, b), []Value{a, b}) }
func (g *Graph) Sub(a, b Value) Value { return g.op("Sub", sameType("Sub", a, b), []Value{a, b}) }
func (g *Graph) Mul(a, b Value) Value { return g.op("Mul", sameType("Mul", a, b), []Value{a, b}) }
func (g *Graph) Div(a, b Value) Value { return g.op("Div", sameType("Div", a, b), []Value{a, b}) }
func (g *Graph) Pow(a, b Value) Value { return g.op("Pow", a.DType, []Value{a, b}) }

// Unary elementwise ops.
func (g *Graph) Neg(a Value) Value        { return g.op("Neg", a.DType, []Value{a}) }
func (g *Graph) Sqrt(a Value) Value       { return g.op("Sqrt", a.DType, []Value{a}) }
func (g *Graph) Reciprocal(a Value) Value { return g.op("Reciprocal", a.DType, []Value{a}) }
func (g *Graph) Sigmoid(a Value) Value    { return g.op("Sigmoid", a.DType, []Value{a}) }
func (g *Graph) Exp(a Value) Value        { return g.op("Exp", a.DType, []Value{a}) }
func (g *Graph) Cos(a Value) Value        { return g.op("Cos", a.DType, []Value{a}) }
func (g *Graph) Sin(a Value) Value        { return g.op("Sin", a.DType, []Value{a}) }
func (g *Graph) Identity(a Value) Value   { return g.op("Identity", a.DType, []Value{a}) }

// Comparisons and logic produce bool tensors.
func (g *Graph) Equal(a, b Value) Value {
	sameType("Equal", a, b)
	return g.op("Equal", Bool, []Value{a, b})
}
func (g *Graph) LessOrEqual(a, b Value) Value {
	sameType("LessOrEqual", a, b)
	return g.op("LessOrEqual", Bool, []Value{a, b})
}
func (g *Graph) And(a, b Value) Value { return g.op("And", Bool, []Value{a, b}) }

// MatMul is numpy matmul with batch broadcasting.
func (g *Graph) MatMul(a, b Value) Value {
	return g.op("MatMul", sameType("MatMul", a, b), []Value{a, b})
}

// GemmTransB is a·bᵀ for 2-D a [m,k] and b [n,k]: the layout of HF weights, without a Transpose.
func (g *Graph) GemmTransB(a, b Value) Value {
	return g.op("Gemm", sameType("Gemm", a, b), []Value{a, b}, AttrInt("transB", 1))
}

// Softmax over one axis.
func (g *Graph) Softmax(a Value, axis int64) Value {
	return g.op("Softmax", a.DType, []Value{a}, AttrInt("axis", axis))
}

// ReduceMean over axes, keeping them (opset 17: axes is an attribute).
func (g *Graph) ReduceMean(a Value, axes ...int64) Value {
	return g.op("ReduceMean", a.DType, []Value{a}, AttrInts("axes", axes...), AttrInt("keepdims", 1))
}

// Cast converts to dt.
func (g *Graph) Cast(a Value, dt DType) Value {
	if a.DType == dt {
		return a
	}
	return g.op("Cast", dt, []Value{a}, AttrInt("to", int64(dt)))
}

// Reshape to a constant shape (0 copies a dimension, -1 is inferred).
func (g *Graph) Reshape(a Value, shape ...int64) Value {
	return g.op("Reshape", a.DType, []Value{a, g.ConstInt64(shape, int64(len(shape)))})
}

// ReshapeTo reshapes to a shape given as a tensor.
func (g *Graph) ReshapeTo(a, shape Value) Value { return g.op("Reshape", a.DType, []Value{a, shape}) }

// Transpose permutes axes.
func (g *Graph) Transpose(a Value, perm ...int64) Value {
	return g.op("Transpose", a.DType, []Value{a}, AttrInts("perm", perm...))
}

// Unsqueeze inserts axes of size 1.
func (g *Graph) Unsqueeze(a Value, axes ...int64) Value {
	return g.op("Unsqueeze", a.DType, []Value{a, g.ConstInt64(axes, int64(len(axes)))})
}

// Concat joins along axis.
func (g *Graph) Concat(axis int64, vs ...Value) Value {
	return g.op("Concat", sameType("Concat", vs...), vs, AttrInt("axis", axis))
}

// Split cuts a along axis into pieces of the given sizes.
func (g *Graph) Split(a Value, axis int64, sizes ...int64) []Value {
	types := make([]DType, len(sizes))
	for i := range types {
		types[i] = a.DType
	}
	return g.Node("Split", []Value{a, g.ConstInt64(sizes, int64(len(sizes)))}, types, AttrInt("axis", axis))
}

// Gather takes slices of data along axis at indices.
func (g *Graph) Gather(data, indices Value, axis int64) Value {
	return g.op("Gather", data.DType, []Value{data, indices}, AttrInt("axis", axis))
}

// GatherElements picks data[..., indices[...], ...] along axis.
func (g *Graph) GatherElements(data, indices Value, axis int64) Value {
	return g.op("GatherElements", data.DType, []Value{data, indices}, AttrInt("axis", axis))
}

// Where selects x where cond holds, else y.
func (g *Graph) Where(cond, x, y Value) Value {
	return g.op("Where", sameType("Where", x, y), []Value{cond, x, y})
}

// Shape of a tensor, as int64.
func (g *Graph) Shape(a Value) Value { return g.op("Shape", Int64, []Value{a}) }

// ShapeDim is dimension i of a, as an int64 tensor of shape [1].
func (g *Graph) ShapeDim(a Value, i int64) Value {
	return g.op("Shape", Int64, []Value{a}, AttrInt("start", i), AttrInt("end", i+1))
}

// Range is [start, limit) with step delta, from scalar tensors.
func (g *Graph) Range(start, limit, delta Value) Value {
	return g.op("Range", sameType("Range", start, limit, delta), []Value{start, limit, delta})
}

// Squeeze removes axes of size 1.
func (g *Graph) Squeeze(a Value, axes ...int64) Value {
	return g.op("Squeeze", a.DType, []Value{a, g.ConstInt64(axes, int64(len(axes)))})
}

// ConstInt64 is an int64 constant initializer (deduplicated by value).
func (g *Graph) ConstInt64(vals []int64, dims ...int64) Value {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return g.constRaw(Int64, raw, dims)
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
	name := fmt.Sprintf("const_%d", len(g.consts))
	g.pb.Initializer = append(g.pb.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims, RawData: raw,
	})
	v := Value{name, dt}
	g.consts[key] = v
	return v
}

// External declares an initializer whose bytes live in a file beside the model (ONNX external
// data): location is relative to the folder ONNX Runtime is told to read external data from.
func (g *Graph) External(name string, dt DType, dims []int64, location string, offset, length int64) Value {
	kv := func(k, v string) *onnxpb.StringStringEntryProto {
		return &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
	}
	g.pb.Initializer = append(g.pb.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims,
		DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*onnxpb.StringStringEntryProto{
			kv("location", location), kv("offset", strconv.FormatInt(offset, 10)), kv("length", strconv.FormatInt(length, 10)),
		},
	})
	return Value{name, dt}
}

// Model wraps the graph in a ModelProto for the default ONNX domain at Opset.
func (g *Graph) Model(producer string) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		ProducerName: proto.String(producer),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:        g.pb,
	}
}

// Proto exposes the graph for passes that rewrite it (autodiff, pruning).
func (g *Graph) Proto() *onnxpb.GraphProto { return g.pb }
