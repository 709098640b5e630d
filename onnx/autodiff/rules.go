package autodiff

import (
	"fmt"
	"math"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/onnxpb"
)

// ctx is what a rule sees of one forward node.
type ctx struct {
	d    *diff
	n    *onnxpb.NodeProto
	need []bool
}

func (c *ctx) g() *builder.Graph { return c.d.bg }

// in is forward input i as a residual; meta is its type and shape without reading it.
func (c *ctx) in(i int) builder.Value     { return c.d.fwdValue(c.n.Input[i]) }
func (c *ctx) inMeta(i int) builder.Value { return c.d.value(c.n.Input[i]) }
func (c *ctx) out(i int) builder.Value    { return c.d.fwdValue(c.n.Output[i]) }
func (c *ctx) outMeta(i int) builder.Value {
	return c.d.value(c.n.Output[i])
}
func (c *ctx) shape(i int) builder.Value { return c.d.fwdShape(c.n.Input[i]) }

// ints reads constant int64 input i (axes, sizes, shapes).
func (c *ctx) ints(i int) []int64 {
	v := c.inMeta(i)
	if v.Ints == nil {
		panic(fmt.Sprintf("%s: input %d (%s) must be a constant", c.n.GetName(), i, v.Name))
	}
	out := make([]int64, len(v.Ints))
	for j, d := range v.Ints {
		if !d.Static() && !(d.Size == -1 && len(d.Syms) == 0) {
			panic(fmt.Sprintf("%s: input %d is not a constant", c.n.GetName(), i))
		}
		out[j] = d.Size
	}
	return out
}

func (c *ctx) attrInt(name string, def int64) int64 {
	for _, a := range c.n.Attribute {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func (c *ctx) attrInts(name string) []int64 {
	for _, a := range c.n.Attribute {
		if a.GetName() == name {
			return a.GetInts()
		}
	}
	return nil
}

func (c *ctx) attrFloat(name string, def float32) float32 {
	for _, a := range c.n.Attribute {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}

func (c *ctx) scalar(v float64, like builder.Value) builder.Value { return c.g().Scalar(like.DType, v) }

// sumTo reduces a cotangent g over the axes along which x was broadcast to g's shape.
func (c *ctx) sumTo(g builder.Value, x builder.Value) builder.Value {
	rg, rx := g.Rank(), x.Rank()
	lead := rg - rx
	var axes []int64
	for i := 0; i < rg; i++ {
		j := i - lead
		if j < 0 || (x.Shape[j].IsOne() && !g.Shape[i].IsOne()) {
			axes = append(axes, int64(i))
		}
	}
	if len(axes) == 0 {
		return g
	}
	r := c.g().ReduceSum(g, true, axes...)
	if lead > 0 {
		sq := make([]int64, lead)
		for i := range sq {
			sq[i] = int64(i)
		}
		r = c.g().Squeeze(r, sq...)
	}
	return r
}

// zero is the "no cotangent" marker.
var zero builder.Value

type rule func(c *ctx, gOut []builder.Value) []builder.Value

// rules maps an op type to its vector-Jacobian product. A rule returns one cotangent per input
// (the zero Value where none is needed) and may read c.need to skip work.
var rules = map[string]rule{
	"Identity": func(c *ctx, g []builder.Value) []builder.Value { return []builder.Value{g[0]} },
	"Add": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.when(0, func() builder.Value { return c.sumTo(g[0], c.inMeta(0)) }),
			c.when(1, func() builder.Value { return c.sumTo(g[0], c.inMeta(1)) })}
	},
	"Sub": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.when(0, func() builder.Value { return c.sumTo(g[0], c.inMeta(0)) }),
			c.when(1, func() builder.Value { return c.sumTo(c.g().Neg(g[0]), c.inMeta(1)) })}
	},
	"Mul": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.when(0, func() builder.Value { return c.sumTo(c.g().Mul(g[0], c.in(1)), c.inMeta(0)) }),
			c.when(1, func() builder.Value { return c.sumTo(c.g().Mul(g[0], c.in(0)), c.inMeta(1)) })}
	},
	"Div": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.when(0, func() builder.Value { return c.sumTo(c.g().Div(g[0], c.in(1)), c.inMeta(0)) }),
			c.when(1, func() builder.Value {
				// d(a/b)/db = -(a/b)/b
				return c.sumTo(c.g().Neg(c.g().Div(c.g().Mul(g[0], c.out(0)), c.in(1))), c.inMeta(1))
			})}
	},
	"Pow": func(c *ctx, g []builder.Value) []builder.Value {
		if c.need[1] {
			panic(c.n.GetName() + ": gradient with respect to an exponent is not supported")
		}
		a, p := c.in(0), c.in(1)
		pm1 := c.g().Sub(p, c.g().Scalar(p.DType, 1))
		grad := c.g().Mul(c.g().Mul(g[0], c.g().Cast(p, a.DType)), c.g().Pow(a, pm1))
		return []builder.Value{c.sumTo(grad, c.inMeta(0)), zero}
	},
	"Neg": func(c *ctx, g []builder.Value) []builder.Value { return []builder.Value{c.g().Neg(g[0])} },
	"Sqrt": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Div(c.g().Mul(g[0], c.scalar(0.5, g[0])), c.out(0))}
	},
	"Reciprocal": func(c *ctx, g []builder.Value) []builder.Value {
		y := c.out(0)
		return []builder.Value{c.g().Neg(c.g().Mul(c.g().Mul(g[0], y), y))}
	},
	"Exp": func(c *ctx, g []builder.Value) []builder.Value { return []builder.Value{c.g().Mul(g[0], c.out(0))} },
	"Log": func(c *ctx, g []builder.Value) []builder.Value { return []builder.Value{c.g().Div(g[0], c.in(0))} },
	"Sigmoid": func(c *ctx, g []builder.Value) []builder.Value {
		y := c.out(0)
		oneMinus := c.g().Sub(c.scalar(1, y), y)
		return []builder.Value{c.g().Mul(c.g().Mul(g[0], y), oneMinus)}
	},
	"Cos": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Neg(c.g().Mul(g[0], c.g().Sin(c.in(0))))}
	},
	"Sin": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Mul(g[0], c.g().Cos(c.in(0)))}
	},
	"Cast": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Cast(g[0], c.inMeta(0).DType)}
	},
	"Softmax": func(c *ctx, g []builder.Value) []builder.Value {
		y := c.out(0)
		axis := c.attrInt("axis", -1)
		s := c.g().ReduceSum(c.g().Mul(g[0], y), true, axis)
		return []builder.Value{c.g().Mul(y, c.g().Sub(g[0], s))}
	},
	"ReduceMean": func(c *ctx, g []builder.Value) []builder.Value {
		a := c.inMeta(0)
		axes := c.attrInts("axes")
		if axes == nil {
			axes = allAxes(a.Rank())
		}
		n := int64(1)
		for _, ax := range axes {
			d := a.Shape[builder.NormAxis(ax, a.Rank())]
			if !d.Static() {
				panic(c.n.GetName() + ": ReduceMean gradient needs static reduced axes")
			}
			n *= d.Size
		}
		gg := c.unreduce(g[0], axes, c.attrInt("keepdims", 1) == 1)
		gg = c.g().Mul(gg, c.scalar(1/float64(n), gg))
		return []builder.Value{c.g().Expand(gg, c.shape(0), a.Shape)}
	},
	"ReduceSum": func(c *ctx, g []builder.Value) []builder.Value {
		a := c.inMeta(0)
		axes := allAxes(a.Rank())
		if len(c.n.Input) > 1 && c.n.Input[1] != "" {
			axes = c.ints(1)
		}
		gg := c.unreduce(g[0], axes, c.attrInt("keepdims", 1) == 1)
		return []builder.Value{c.g().Expand(gg, c.shape(0), a.Shape), zero}
	},
	"MatMul": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{
			c.when(0, func() builder.Value { return c.sumTo(c.g().MatMul(g[0], c.swapLast(c.in(1))), c.inMeta(0)) }),
			c.when(1, func() builder.Value { return c.sumTo(c.g().MatMul(c.swapLast(c.in(0)), g[0]), c.inMeta(1)) })}
	},
	"Gemm": gemmRule,
	"Reshape": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().ReshapeTo(g[0], c.shape(0)), zero}
	},
	"Transpose": transposeRule,
	"Unsqueeze": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Squeeze(g[0], c.ints(1)...), zero}
	},
	"Squeeze": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.g().Unsqueeze(g[0], c.ints(1)...), zero}
	},
	"Concat":         concatRule,
	"Split":          splitRule,
	"Slice":          sliceRule,
	"Gather":         gatherRule,
	"GatherElements": gatherElementsRule,
	"Where": func(c *ctx, g []builder.Value) []builder.Value {
		cond := c.in(0)
		z := c.scalar(0, g[0])
		return []builder.Value{zero,
			c.when(1, func() builder.Value { return c.sumTo(c.g().Where(cond, g[0], z), c.inMeta(1)) }),
			c.when(2, func() builder.Value { return c.sumTo(c.g().Where(cond, z, g[0]), c.inMeta(2)) })}
	},
	"Expand": func(c *ctx, g []builder.Value) []builder.Value {
		return []builder.Value{c.sumTo(g[0], c.inMeta(0)), zero}
	},
}

// when computes input i's cotangent only if it is needed.
func (c *ctx) when(i int, f func() builder.Value) builder.Value {
	if !c.need[i] {
		return zero
	}
	return f()
}

func allAxes(rank int) []int64 {
	axes := make([]int64, rank)
	for i := range axes {
		axes[i] = int64(i)
	}
	return axes
}

// unreduce restores reduced axes of size 1 when the reduction dropped them.
func (c *ctx) unreduce(g builder.Value, axes []int64, keep bool) builder.Value {
	if keep {
		return g
	}
	rank := g.Rank() + len(axes)
	norm := make([]int64, len(axes))
	for i, a := range axes {
		norm[i] = int64(builder.NormAxis(a, rank))
	}
	return c.g().Unsqueeze(g, norm...)
}

func (c *ctx) swapLast(v builder.Value) builder.Value {
	perm := allAxes(v.Rank())
	r := len(perm)
	perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
	return c.g().Transpose(v, perm...)
}

// gemmRule: Y = alpha·op(A)·op(B) + beta·C.
func gemmRule(c *ctx, g []builder.Value) []builder.Value {
	tA, tB := c.attrInt("transA", 0) == 1, c.attrInt("transB", 0) == 1
	alpha, beta := float64(c.attrFloat("alpha", 1)), float64(c.attrFloat("beta", 1))
	gy := g[0]
	if alpha != 1 {
		gy = c.g().Mul(gy, c.scalar(alpha, gy))
	}
	out := make([]builder.Value, len(c.n.Input))
	gg := c.g()
	if c.need[0] {
		b := c.in(1)
		switch {
		case !tA && !tB:
			out[0] = gg.Gemm(gy, b, false, true)
		case !tA && tB:
			out[0] = gg.Gemm(gy, b, false, false)
		case tA && !tB:
			out[0] = gg.Gemm(b, gy, false, true)
		default:
			out[0] = gg.Gemm(b, gy, true, true)
		}
	}
	if c.need[1] {
		a := c.in(0)
		switch {
		case !tA && !tB:
			out[1] = gg.Gemm(a, gy, true, false)
		case !tA && tB:
			out[1] = gg.Gemm(gy, a, true, false)
		case tA && !tB:
			out[1] = gg.Gemm(a, gy, false, false)
		default:
			out[1] = gg.Gemm(gy, a, true, true)
		}
	}
	if len(c.n.Input) > 2 && c.need[2] {
		gc := g[0]
		if beta != 1 {
			gc = c.g().Mul(gc, c.scalar(beta, gc))
		}
		out[2] = c.sumTo(gc, c.inMeta(2))
	}
	return out
}

func transposeRule(c *ctx, g []builder.Value) []builder.Value {
	perm := c.attrInts("perm")
	if perm == nil {
		perm = allAxes(c.inMeta(0).Rank())
		for i, j := 0, len(perm)-1; i < j; i, j = i+1, j-1 {
			perm[i], perm[j] = perm[j], perm[i]
		}
	}
	inv := make([]int64, len(perm))
	for i, p := range perm {
		inv[p] = int64(i)
	}
	return []builder.Value{c.g().Transpose(g[0], inv...)}
}

func concatRule(c *ctx, g []builder.Value) []builder.Value {
	rank := c.outMeta(0).Rank()
	axis := builder.NormAxis(c.attrInt("axis", 0), rank)
	extents := make([]builder.Dim, len(c.n.Input))
	sizes := make([]int64, len(c.n.Input))
	static := true
	for i := range c.n.Input {
		extents[i] = c.inMeta(i).Shape[axis]
		static = static && extents[i].Static()
		sizes[i] = extents[i].Size
	}
	var parts []builder.Value
	if static {
		parts = c.g().Split(g[0], int64(axis), sizes...)
	} else {
		dims := make([]builder.Value, len(c.n.Input))
		for i := range dims {
			dims[i] = c.g().Gather(c.shape(i), c.g().ConstInt64([]int64{int64(axis)}, 1), 0)
		}
		parts = c.g().SplitBy(g[0], int64(axis), c.g().Concat(0, dims...), extents)
	}
	out := make([]builder.Value, len(parts))
	for i, p := range parts {
		if c.need[i] {
			out[i] = p
		}
	}
	return out
}

func splitRule(c *ctx, g []builder.Value) []builder.Value {
	axis := c.attrInt("axis", 0)
	parts := make([]builder.Value, len(g))
	for i, gi := range g {
		if gi.Name != "" {
			parts[i] = gi
			continue
		}
		o := c.outMeta(i)
		parts[i] = c.g().Zeros(o.DType, c.d.fwdShape(c.n.Output[i]), o.Shape)
	}
	out := make([]builder.Value, len(c.n.Input))
	out[0] = c.g().Concat(axis, parts...)
	return out
}

// sliceRule pads the cotangent back to the input's shape; it supports constant starts/ends/axes,
// unit steps and static extents along the sliced axes.
func sliceRule(c *ctx, g []builder.Value) []builder.Value {
	a := c.inMeta(0)
	starts, ends := c.ints(1), c.ints(2)
	axes := allAxes(len(starts))
	if len(c.n.Input) > 3 && c.n.Input[3] != "" {
		axes = c.ints(3)
	}
	if len(c.n.Input) > 4 && c.n.Input[4] != "" {
		for _, s := range c.ints(4) {
			if s != 1 {
				panic(c.n.GetName() + ": Slice gradient supports step 1 only")
			}
		}
	}
	pads := make([]int64, 2*a.Rank())
	for i, ax := range axes {
		k := builder.NormAxis(ax, a.Rank())
		d := a.Shape[k]
		if !d.Static() {
			panic(c.n.GetName() + ": Slice gradient needs a static extent on sliced axes")
		}
		clamp := func(v int64) int64 {
			if v < 0 {
				v += d.Size
			}
			return max(0, min(v, d.Size))
		}
		s, e := clamp(starts[i]), clamp(ends[i])
		pads[k] = s
		pads[a.Rank()+k] = d.Size - max(e, s)
	}
	return []builder.Value{c.g().Pad(g[0], c.g().ConstInt64(pads, int64(len(pads))), a.Shape), zero, zero, zero, zero}[:len(c.n.Input)]
}

// gatherRule scatters the cotangent back into rows (axis 0 only: embeddings, row selection, the
// LM head's rows of a vocabulary subset). Indices may repeat and come in any order, so the rows
// of one index are summed before anything is scattered: ONNX Runtime's CPU ScatterND spreads its
// updates over threads, and two threads adding into the same row lose one of the updates (with
// 2 threads, 4096 updates into 8 rows of 2048 lost whole updates). See segmentSums.
func gatherRule(c *ctx, g []builder.Value) []builder.Value {
	data := c.inMeta(0)
	if builder.NormAxis(c.attrInt("axis", 0), data.Rank()) != 0 {
		panic(c.n.GetName() + ": Gather gradient supports axis 0 only")
	}
	rest := make([]int64, 0, data.Rank()-1)
	for _, d := range data.Shape[1:] {
		if !d.Static() {
			panic(c.n.GetName() + ": Gather gradient needs static extents after axis 0")
		}
		rest = append(rest, d.Size)
	}
	gg := c.g()
	shape := c.shape(0)
	// Negative indices count from the end, as in Gather; Mod makes every index its row number.
	rows := gg.Gather(shape, gg.ConstInt64([]int64{0}, 1), 0)
	idx := gg.Mod(gg.Reshape(c.in(1), -1), rows)
	targets, sums := c.segmentSums(idx, gg.Reshape(g[0], append([]int64{-1}, rest...)...))
	zeros := gg.Zeros(data.DType, shape, data.Shape)
	return []builder.Value{gg.ScatterNDAdd(zeros, gg.Unsqueeze(targets, -1), sums), zero}
}

// segmentSums sums the rows of updates [n, ...] that share an index of idx [n]: it returns the
// distinct indices [k] and their sums [k, ...]. The rows are sorted by index (TopK), summed
// cumulatively in float64, and each index's sum is the difference of the running sum at its
// last row and at the previous index's last row, so no two updates of the scatter that follows
// touch the same row. float64 keeps the differences exact to ~1e-16 of the running sum.
func (c *ctx) segmentSums(idx, updates builder.Value) (builder.Value, builder.Value) {
	gg := c.g()
	n := gg.ShapeDim(idx, 0)
	sorted, perm := gg.TopK(idx, n, 0, false, idx.Shape[0])
	running := gg.CumSum(gg.Cast(gg.Gather(updates, perm, 0), builder.Float64), 0)
	// A row is the last of its index where the next sorted index differs (-1 never occurs).
	one, end := gg.ConstInt64([]int64{1}, 1), gg.ConstInt64([]int64{math.MaxInt64}, 1)
	next := gg.Slice(sorted, one, end, gg.ConstInt64([]int64{0}, 1), builder.Shape{builder.Unknown})
	next = gg.Concat(0, next, gg.ConstInt64([]int64{-1}, 1))
	last := gg.Not(gg.Equal(sorted, next))
	atLast := gg.Compress(running, last, 0)
	// previous[i] = atLast[i-1], zero for the first index: drop the last row, pad one in front.
	r := updates.Rank()
	previous := gg.Slice(atLast, gg.ConstInt64([]int64{0}, 1), gg.ConstInt64([]int64{-1}, 1), gg.ConstInt64([]int64{0}, 1), atLast.Shape)
	pads := make([]int64, 2*r)
	pads[0] = 1
	previous = gg.Pad(previous, gg.ConstInt64(pads, int64(len(pads))), atLast.Shape)
	sums := gg.Cast(gg.Sub(atLast, previous), updates.DType)
	return gg.Compress(sorted, last, 0), sums
}

func gatherElementsRule(c *ctx, g []builder.Value) []builder.Value {
	data := c.inMeta(0)
	zeros := c.g().Zeros(data.DType, c.shape(0), data.Shape)
	return []builder.Value{c.g().ScatterElementsAdd(zeros, c.in(1), g[0], c.attrInt("axis", 0)), zero}
}

// Ops lists the op types that have a gradient rule.
func Ops() []string {
	ops := make([]string, 0, len(rules))
	for op := range rules {
		ops = append(ops, op)
	}
	return ops
}
