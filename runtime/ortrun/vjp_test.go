package ortrun

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/builder"
	"google.golang.org/protobuf/proto"
)

// vjpInput is one input of a rule test graph.
type vjpInput struct {
	name  string
	shape []int64
	kind  string // "float", "positive", "int<N>" (ids in [0,N)), "bool"
}

type vjpCase struct {
	name   string
	inputs []vjpInput
	build  func(g *builder.Graph, in []builder.Value) builder.Value
	wrt    []string
}

func f(name string, shape ...int64) vjpInput   { return vjpInput{name, shape, "float"} }
func pos(name string, shape ...int64) vjpInput { return vjpInput{name, shape, "positive"} }

// vjpCases cover every rule autodiff has, on small random shapes, broadcasting included.
var vjpCases = []vjpCase{
	{"Add/broadcast-rank", []vjpInput{f("a", 3, 4), f("b", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Add(in[0], in[1]) }, []string{"a", "b"}},
	{"Add/broadcast-ones", []vjpInput{f("a", 2, 1, 4), f("b", 3, 1)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Add(in[0], in[1]) }, []string{"a", "b"}},
	{"Sub", []vjpInput{f("a", 3, 4), f("b", 3, 1)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Sub(in[0], in[1]) }, []string{"a", "b"}},
	{"Mul", []vjpInput{f("a", 2, 3, 4), f("b", 1, 3, 1)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Mul(in[0], in[1]) }, []string{"a", "b"}},
	{"Div", []vjpInput{f("a", 3, 4), pos("b", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Div(in[0], in[1]) }, []string{"a", "b"}},
	{"Div/denominator-only", []vjpInput{f("a", 3, 4), pos("b", 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Div(in[0], in[1]) }, []string{"b"}},
	{"Pow", []vjpInput{pos("a", 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Pow(in[0], g.Scalar(builder.Float64, 2.5))
	}, []string{"a"}},
	{"Sqrt", []vjpInput{pos("a", 5)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Sqrt(in[0]) }, []string{"a"}},
	{"Reciprocal", []vjpInput{pos("a", 2, 3)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Reciprocal(in[0]) }, []string{"a"}},
	{"Neg", []vjpInput{f("a", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Neg(in[0]) }, []string{"a"}},
	{"Exp", []vjpInput{f("a", 2, 3)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Exp(in[0]) }, []string{"a"}},
	{"Log", []vjpInput{pos("a", 2, 3)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Log(in[0]) }, []string{"a"}},
	{"Sigmoid", []vjpInput{f("a", 3, 3)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Sigmoid(in[0]) }, []string{"a"}},
	{"Cos", []vjpInput{f("a", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Cos(in[0]) }, []string{"a"}},
	{"Sin", []vjpInput{f("a", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Sin(in[0]) }, []string{"a"}},
	{"Identity+reuse", []vjpInput{f("a", 3)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Mul(g.Identity(in[0]), g.Exp(in[0]))
	}, []string{"a"}},
	{"Cast/float32-round-trip-free", []vjpInput{f("a", 3)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		// Cast to float64 of a float64 value is the identity op: exercises the rule without rounding.
		return g.Op("Cast", builder.Float64, in[0].Shape, []builder.Value{in[0]}, builder.AttrInt("to", int64(builder.Float64)))
	}, []string{"a"}},
	{"Softmax/last", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Softmax(in[0], -1) }, []string{"a"}},
	{"Softmax/middle", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Softmax(in[0], 1) }, []string{"a"}},
	{"ReduceMean", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.ReduceMean(in[0], -1) }, []string{"a"}},
	{"ReduceSum/drop", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.ReduceSum(in[0], false, 0, 2) }, []string{"a"}},
	{"MatMul", []vjpInput{f("a", 2, 3, 4), f("b", 4, 5)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.MatMul(in[0], in[1]) }, []string{"a", "b"}},
	{"MatMul/broadcast-batch", []vjpInput{f("a", 2, 1, 3, 4), f("b", 1, 2, 4, 5)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.MatMul(in[0], in[1]) }, []string{"a", "b"}},
	{"Gemm/transB", []vjpInput{f("a", 3, 4), f("b", 5, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Gemm(in[0], in[1], false, true) }, []string{"a", "b"}},
	{"Gemm/plain", []vjpInput{f("a", 3, 4), f("b", 4, 5)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Gemm(in[0], in[1], false, false) }, []string{"a", "b"}},
	{"Gemm/transA", []vjpInput{f("a", 4, 3), f("b", 4, 5)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Gemm(in[0], in[1], true, false) }, []string{"a", "b"}},
	{"Gemm/transA-transB", []vjpInput{f("a", 4, 3), f("b", 5, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Gemm(in[0], in[1], true, true) }, []string{"a", "b"}},
	{"Gemm/alpha-beta-bias", []vjpInput{f("a", 3, 4), f("b", 5, 4), f("c", 5)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Op("Gemm", builder.Float64, builder.Shape{builder.Fixed(3), builder.Fixed(5)}, in,
			builder.AttrInt("transB", 1), builder.AttrFloat("alpha", 0.5), builder.AttrFloat("beta", 2))
	}, []string{"a", "b", "c"}},
	{"Reshape", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Reshape(in[0], 6, -1) }, []string{"a"}},
	{"Transpose", []vjpInput{f("a", 2, 3, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Transpose(in[0], 2, 0, 1) }, []string{"a"}},
	{"Unsqueeze+Squeeze", []vjpInput{f("a", 2, 3)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		u := g.Unsqueeze(in[0], 0, 2)
		return g.Mul(u, g.Squeeze(g.Unsqueeze(in[0], 1), 1))
	}, []string{"a"}},
	{"Concat", []vjpInput{f("a", 2, 3), f("b", 2, 2)}, func(g *builder.Graph, in []builder.Value) builder.Value { return g.Concat(1, in[0], in[1]) }, []string{"a", "b"}},
	{"Split/unused-piece", []vjpInput{f("a", 2, 4)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		parts := g.Split(in[0], 1, 1, 3)
		return g.Exp(parts[1])
	}, []string{"a"}},
	{"Split/both", []vjpInput{f("a", 4, 2)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		parts := g.Split(in[0], 0, 3, 1)
		return g.Mul(parts[0], parts[1])
	}, []string{"a"}},
	{"Slice", []vjpInput{f("a", 4, 5)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Slice(in[0], g.ConstInt64([]int64{1}, 1), g.ConstInt64([]int64{3}, 1), g.ConstInt64([]int64{1}, 1),
			builder.Shape{builder.Fixed(4), builder.Fixed(2)})
	}, []string{"a"}},
	{"Gather/rows-with-repeats", []vjpInput{f("a", 5, 3), {"i", []int64{2, 3}, "int5"}}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Gather(in[0], in[1], 0)
	}, []string{"a"}},
	{"GatherElements", []vjpInput{f("a", 3, 5), {"i", []int64{3, 4}, "int5"}}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.GatherElements(in[0], in[1], 1)
	}, []string{"a"}},
	{"Where/broadcast", []vjpInput{{"c", []int64{3, 4}, "bool"}, f("a", 3, 4), f("b", 4)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Where(in[0], in[1], in[2])
	}, []string{"a", "b"}},
	{"Expand", []vjpInput{f("a", 3, 1)}, func(g *builder.Graph, in []builder.Value) builder.Value {
		return g.Expand(in[0], g.ConstInt64([]int64{2, 3, 4}, 3), builder.Shape{builder.Fixed(2), builder.Fixed(3), builder.Fixed(4)})
	}, []string{"a"}},
}

// gradCheck runs a forward graph and its backward graph on ORT in float64 and compares the
// gradients with central differences of L = <y, w>.
type gradCheck struct {
	fwd, bwd    *Session
	res         *autodiff.Result
	inputs      map[string]Tensor
	outputs     map[string]Tensor // forward outputs: y and residuals
	yName       string
	w           []float64
	fwdOutNames []string
}

func newGradCheck(t *testing.T, g *builder.Graph, y builder.Value, wrt []string, policy autodiff.Policy, inputs map[string]Tensor, seed uint64) *gradCheck {
	t.Helper()
	g.Output(y, "y")
	res, err := autodiff.Differentiate(g, "y", wrt, policy)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := proto.Marshal(g.Model("test"))
	bb, _ := proto.Marshal(res.Backward.Model("test"))
	var inNames []string
	for _, in := range g.Proto().Input {
		inNames = append(inNames, in.GetName())
	}
	outNames := []string{"y"}
	outputs := map[string]Tensor{}
	yv, _ := g.Lookup("y")
	ys, err := yv.Shape.Eval(nil)
	if err != nil {
		t.Fatal(err)
	}
	outputs["y"] = NewTensorLike([]float64(nil), ys)
	for _, r := range res.Residuals {
		s, err := r.Shape.Eval(nil)
		if err != nil {
			t.Fatal(err)
		}
		outNames = append(outNames, r.Name)
		outputs[r.Name] = newTensorOfType(r.DType, s)
	}
	fs, err := NewSession(fb, t.TempDir(), inNames, outNames, SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	var bIn, bOut []string
	for _, v := range res.Inputs {
		bIn = append(bIn, v.Name)
	}
	for _, v := range res.Grads {
		bOut = append(bOut, v.Name)
	}
	bs, err := NewSession(bb, t.TempDir(), bIn, bOut, SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	rng := rand.New(rand.NewPCG(seed, 99))
	w := make([]float64, len(outputs["y"].Data.([]float64)))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	return &gradCheck{fwd: fs, bwd: bs, res: res, inputs: inputs, outputs: outputs, yName: "y", w: w, fwdOutNames: outNames}
}

// loss runs the forward graph and returns <y, w>.
func (c *gradCheck) loss(t *testing.T) float64 {
	if err := c.fwd.RunNamed(c.inputs, c.outputs); err != nil {
		t.Fatal(err)
	}
	s := 0.0
	for i, v := range c.outputs["y"].Data.([]float64) {
		s += v * c.w[i]
	}
	return s
}

// grads runs forward then backward and returns the gradients by trainable name.
func (c *gradCheck) grads(t *testing.T) map[string][]float64 {
	c.loss(t)
	in := map[string]Tensor{}
	for k, v := range c.inputs {
		in[k] = v
	}
	for _, r := range c.res.Residuals {
		in[r.Name] = c.outputs[r.Name]
	}
	in[autodiff.GradName("y")] = Tensor{c.outputs["y"].Shape, c.w}
	out := map[string]Tensor{}
	res := map[string][]float64{}
	for _, gv := range c.res.Grads {
		name := gv.Name[len("grad."):]
		tt := NewTensorLike([]float64(nil), c.inputs[name].Shape)
		out[gv.Name] = tt
		res[name] = tt.Data.([]float64)
	}
	if err := c.bwd.RunNamed(in, out); err != nil {
		t.Fatal(err)
	}
	return res
}

// fdError compares the analytic gradient of each trainable with central differences on every
// element, returning max |g − fd| / max(1, max |fd|).
func (c *gradCheck) fdError(t *testing.T, wrt []string, eps float64, maxElems int, seed uint64) float64 {
	g := c.grads(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	worst := 0.0
	for _, name := range wrt {
		x := c.inputs[name].Data.([]float64)
		idx := make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
		if maxElems > 0 && len(idx) > maxElems {
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			idx = idx[:maxElems]
		}
		scale, errMax := 1.0, 0.0
		for _, i := range idx {
			old := x[i]
			x[i] = old + eps
			lp := c.loss(t)
			x[i] = old - eps
			lm := c.loss(t)
			x[i] = old
			fd := (lp - lm) / (2 * eps)
			scale = math.Max(scale, math.Abs(fd))
			errMax = math.Max(errMax, math.Abs(g[name][i]-fd))
		}
		worst = math.Max(worst, errMax/scale)
	}
	return worst
}

func randomInputs(ins []vjpInput, seed uint64) map[string]Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := map[string]Tensor{}
	for _, in := range ins {
		n := int64(1)
		for _, d := range in.shape {
			n *= d
		}
		switch {
		case in.kind == "float" || in.kind == "positive":
			v := make([]float64, n)
			for i := range v {
				v[i] = rng.NormFloat64()
				if in.kind == "positive" {
					v[i] = 0.5 + math.Abs(v[i])
				}
			}
			out[in.name] = Tensor{in.shape, v}
		case in.kind == "bool":
			v := make([]bool, n)
			for i := range v {
				v[i] = rng.IntN(2) == 1
			}
			out[in.name] = Tensor{in.shape, v}
		default:
			var hi int
			fmt.Sscanf(in.kind, "int%d", &hi)
			v := make([]int64, n)
			for i := range v {
				v[i] = int64(rng.IntN(hi))
			}
			v[len(v)-1] = v[0] // a repeated index, so scatter must accumulate
			out[in.name] = Tensor{in.shape, v}
		}
	}
	return out
}

func buildCase(c vjpCase) (*builder.Graph, builder.Value) {
	g := builder.New(c.name)
	var vals []builder.Value
	for _, in := range c.inputs {
		dt := builder.Float64
		switch {
		case in.kind == "bool":
			dt = builder.Bool
		case in.kind != "float" && in.kind != "positive":
			dt = builder.Int64
		}
		dims := make([]any, len(in.shape))
		for i, d := range in.shape {
			dims[i] = int(d)
		}
		vals = append(vals, g.Input(in.name, dt, dims...))
	}
	return g, c.build(g, vals)
}

// TestVJPRules checks every rule against float64 central differences under both residual
// policies. Tolerance 1e-6 relative (the bound); with eps 1e-6 the truncation error is
// ~1e-12 and the rounding error ~1e-10 for these O(1) values.
func TestVJPRules(t *testing.T) {
	for i, c := range vjpCases {
		for _, p := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
			t.Run(c.name+"/"+p.String(), func(t *testing.T) {
				g, y := buildCase(c)
				check := newGradCheck(t, g, y, c.wrt, p, randomInputs(c.inputs, uint64(i)), uint64(i))
				if e := check.fdError(t, c.wrt, 1e-6, 0, uint64(i)); e > 1e-6 {
					t.Errorf("gradient vs central differences: relative error %.3g, want ≤ 1e-6", e)
				}
			})
		}
	}
}

// TestVJPRuleCoverage: every op with a rule has a test case above.
func TestVJPRuleCoverage(t *testing.T) {
	tested := map[string]bool{}
	for _, c := range vjpCases {
		g, y := buildCase(c)
		g.Output(y, "y")
		for _, n := range g.Proto().Node {
			tested[n.GetOpType()] = true
		}
	}
	for _, op := range autodiff.Ops() {
		if !tested[op] {
			t.Errorf("op %s has a gradient rule but no finite-difference test", op)
		}
	}
}
