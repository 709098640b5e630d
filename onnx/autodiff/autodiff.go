package autodiff

import (
	"fmt"
	"sort"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Policy says how the backward graph obtains forward intermediates.
type Policy int

const (
	Stash     Policy = iota // the forward graph outputs them; backward takes them as inputs
	Recompute               // the backward graph recomputes them from the forward inputs
)

func (p Policy) String() string {
	if p == Recompute {
		return "recompute"
	}
	return "stash"
}

// ParsePolicy reads "stash" or "recompute".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "stash":
		return Stash, nil
	case "recompute":
		return Recompute, nil
	}
	return 0, fmt.Errorf("policy %q: want stash or recompute", s)
}

// GradName is the backward output (or cotangent input) for a forward value.
func GradName(name string) string { return "grad." + name }

// Result describes a backward graph and how it connects to the forward graph.
type Result struct {
	Backward *builder.Graph
	// Residuals are the forward intermediates the forward graph now outputs (Stash only), in order.
	Residuals []builder.Value
	// Inputs are the backward graph's inputs in order: forward inputs it reads, residuals
	// (Stash), then the cotangent.
	Inputs []builder.Value
	// Grads are the backward outputs, one per trainable name, in the order asked.
	Grads []builder.Value
}

// Differentiate builds the backward graph of fwd for the trainable inputs or initializers wrt,
// given the cotangent of the forward output named output. With Stash, fwd is extended in place
// with the residual outputs.
func Differentiate(fwd *builder.Graph, output string, wrt []string, policy Policy) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("autodiff: %v", r)
		}
	}()
	d := newDiff(fwd, policy)
	return d.run(output, wrt)
}

type diff struct {
	fwd      *builder.Graph
	bg       *builder.Graph
	policy   Policy
	nodes    []*onnxpb.NodeProto
	producer map[string]int // value name → index of the node producing it
	inits    map[string]*onnxpb.TensorProto
	inputs   map[string]bool
	// residuals: forward value name → its value in the backward graph
	residual map[string]builder.Value
	shapes   map[string]builder.Value // forward value → forward Shape() node, for shape residuals
	grads    map[string][]builder.Value
}

func newDiff(fwd *builder.Graph, policy Policy) *diff {
	d := &diff{fwd: fwd, bg: builder.New("backward"), policy: policy, producer: map[string]int{},
		inits: map[string]*onnxpb.TensorProto{}, inputs: map[string]bool{}, residual: map[string]builder.Value{},
		shapes: map[string]builder.Value{}, grads: map[string][]builder.Value{}}
	pb := fwd.Proto()
	d.nodes = append([]*onnxpb.NodeProto(nil), pb.Node...)
	for i, n := range d.nodes {
		for _, o := range n.Output {
			d.producer[o] = i
		}
	}
	for _, t := range pb.Initializer {
		d.inits[t.GetName()] = t
	}
	for _, in := range pb.Input {
		d.inputs[in.GetName()] = true
	}
	return d
}

// nonDifferentiable ops produce values that never carry a cotangent.
var nonDifferentiable = map[string]bool{
	"Shape": true, "Size": true, "Equal": true, "LessOrEqual": true, "Less": true, "Greater": true,
	"And": true, "Or": true, "Not": true, "Range": true, "ConstantOfShape": true,
}

func (d *diff) value(name string) builder.Value {
	v, ok := d.fwd.Lookup(name)
	if !ok {
		panic(fmt.Sprintf("forward value %s has no recorded type and shape", name))
	}
	return v
}

// varying is the forward sweep: the values that depend on a trainable value.
func (d *diff) varying(wrt []string) (map[string]bool, error) {
	varies := map[string]bool{}
	for _, w := range wrt {
		v, ok := d.fwd.Lookup(w)
		if !ok || !(d.inputs[w] || d.inits[w] != nil) {
			return nil, fmt.Errorf("trainable %s is neither an input nor an initializer of the forward graph", w)
		}
		if !builder.IsFloat(v.DType) {
			return nil, fmt.Errorf("trainable %s has non-float dtype %v", w, v.DType)
		}
		varies[w] = true
	}
	for _, n := range d.nodes {
		if nonDifferentiable[n.GetOpType()] {
			continue
		}
		dep := false
		for _, in := range n.Input {
			dep = dep || varies[in]
		}
		if dep {
			for _, o := range n.Output {
				if builder.IsFloat(d.value(o).DType) {
					varies[o] = true
				}
			}
		}
	}
	return varies, nil
}

// useful is the backward sweep: the values the output depends on.
func (d *diff) useful(output string) map[string]bool {
	useful := map[string]bool{output: true}
	for i := len(d.nodes) - 1; i >= 0; i-- {
		n := d.nodes[i]
		hit := false
		for _, o := range n.Output {
			hit = hit || useful[o]
		}
		if hit {
			for _, in := range n.Input {
				useful[in] = true
			}
		}
	}
	return useful
}

func (d *diff) run(output string, wrt []string) (*Result, error) {
	if _, ok := d.fwd.Lookup(output); !ok {
		return nil, fmt.Errorf("forward graph has no output %s", output)
	}
	varies, err := d.varying(wrt)
	if err != nil {
		return nil, err
	}
	if !varies[output] {
		return nil, fmt.Errorf("output %s does not depend on any trainable value", output)
	}
	useful := d.useful(output)
	active := func(name string) bool { return varies[name] && useful[name] }

	outV := d.value(output)
	cot := d.bg.InputShaped(GradName(output), outV.DType, outV.Shape)
	d.grads[output] = []builder.Value{cot}

	for i := len(d.nodes) - 1; i >= 0; i-- {
		n := d.nodes[i]
		var gOut []builder.Value
		any := false
		for _, o := range n.Output {
			g := d.sumGrads(o)
			gOut = append(gOut, g)
			any = any || g.Name != ""
		}
		if !any {
			continue
		}
		need := make([]bool, len(n.Input))
		needAny := false
		for j, in := range n.Input {
			need[j] = in != "" && active(in)
			needAny = needAny || need[j]
		}
		if !needAny {
			continue
		}
		rule, ok := rules[n.GetOpType()]
		if !ok {
			return nil, fmt.Errorf("no gradient rule for op %s (node %s)", n.GetOpType(), n.GetName())
		}
		d.bg.SetPrefix("grad/" + n.GetName())
		c := &ctx{d: d, n: n, need: need}
		gIn := rule(c, gOut)
		for j, g := range gIn {
			if need[j] && g.Name != "" {
				d.grads[n.Input[j]] = append(d.grads[n.Input[j]], g)
			}
		}
	}
	d.bg.SetPrefix("")
	res := &Result{Backward: d.bg}
	for _, w := range wrt {
		g := d.sumGrads(w)
		if g.Name == "" {
			return nil, fmt.Errorf("trainable %s does not affect output %s", w, output)
		}
		res.Grads = append(res.Grads, d.bg.Output(g, GradName(w)))
	}
	d.finish(res, cot)
	return res, nil
}

// sumGrads accumulates the contributions to a value's cotangent (zero Value if none).
func (d *diff) sumGrads(name string) builder.Value {
	gs := d.grads[name]
	if len(gs) == 0 {
		return builder.Value{}
	}
	g := gs[0]
	for _, h := range gs[1:] {
		g = d.bg.Add(g, h)
	}
	d.grads[name] = []builder.Value{g}
	return g
}

// fwdValue makes a forward value available in the backward graph, recording it as a residual.
func (d *diff) fwdValue(name string) builder.Value {
	if v, ok := d.residual[name]; ok {
		return v
	}
	v := d.value(name)
	if t, ok := d.inits[name]; ok {
		v = d.bg.AddInitializer(t)
	} else {
		v = d.bg.Declare(v)
	}
	d.residual[name] = v
	return v
}

// fwdShape is the runtime shape of a forward value, as a residual Shape() node of the forward
// graph (static shapes become constants and cost nothing).
func (d *diff) fwdShape(name string) builder.Value {
	v := d.value(name)
	static := make([]int64, v.Rank())
	allStatic := true
	for i, dim := range v.Shape {
		allStatic = allStatic && dim.Static()
		static[i] = dim.Size
	}
	if allStatic {
		return d.bg.ConstInt64(static, int64(len(static)))
	}
	s, ok := d.shapes[name]
	if !ok {
		prefix := d.fwd.Prefix()
		d.fwd.SetPrefix("shape_residual")
		s = d.fwd.Shape(v)
		d.fwd.SetPrefix(prefix)
		d.shapes[name] = s
		d.nodes = append(d.nodes, d.fwd.Proto().Node[len(d.fwd.Proto().Node)-1])
		d.producer[s.Name] = len(d.nodes) - 1
	}
	r := d.fwdValue(s.Name)
	r.Ints = s.Ints
	return r
}

// rematerialize recomputes, instead of stashing or keeping alive, the residuals the forward
// graph marked rematerializable (casts of weights, gathered rows, dropout masks): each gets a
// copy of its producer, read through marked values recursively, under its own name, placed
// before the backward's own nodes. ONNX Runtime's default order runs such a low-numbered node
// just before its first consumer (builder.Graph.HoistRematerializable), so the value lives from
// its first backward use to its last (a float32 cast of one weight matrix at a time), and under
// Recompute the forward recomputation's copy dies with its forward uses. Unmarked inputs of the
// copies become residuals like any other.
func (d *diff) rematerialize() {
	marked := func(name string) bool {
		_, produced := d.producer[name]
		return produced && d.fwd.Rematerializable(name)
	}
	pb := d.bg.Proto()
	var remat []*onnxpb.NodeProto
	copies := map[string]string{} // marked forward value → its backward copy
	var emit func(name string) string
	emit = func(name string) string {
		if c, ok := copies[name]; ok {
			return c
		}
		n := proto.Clone(d.nodes[d.producer[name]]).(*onnxpb.NodeProto)
		for j, in := range n.Input {
			switch {
			case in == "":
			case marked(in):
				n.Input[j] = emit(in)
			default:
				d.fwdValue(in)
			}
		}
		for j, o := range n.Output {
			v := d.value(o)
			v.Name = o + "/remat"
			d.bg.Declare(v)
			copies[o], n.Output[j] = v.Name, v.Name
		}
		n.Name = proto.String(n.GetName() + "/remat")
		remat = append(remat, n)
		return copies[name]
	}
	for _, n := range pb.Node {
		for j, in := range n.Input {
			if marked(in) {
				n.Input[j] = emit(in)
			}
		}
	}
	for name := range copies {
		delete(d.residual, name)
	}
	pb.Node = append(remat, pb.Node...)
}

// recompute (Recompute) returns the forward nodes that produce the intermediates, in forward
// order, and declares the forward inputs they read as backward inputs.
func (d *diff) recompute(res *Result, fromInputs, intermediates []string) []*onnxpb.NodeProto {
	// Closure of forward nodes needed for the intermediates, in forward order.
	need := map[int]bool{}
	var visit func(name string)
	visit = func(name string) {
		i, ok := d.producer[name]
		if !ok || need[i] {
			return
		}
		need[i] = true
		for _, in := range d.nodes[i].Input {
			visit(in)
		}
	}
	for _, name := range intermediates {
		visit(name)
	}
	idx := make([]int, 0, len(need))
	for i := range need {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	inputsUsed := map[string]bool{}
	for _, name := range fromInputs {
		inputsUsed[name] = true
	}
	var recompute []*onnxpb.NodeProto
	for _, i := range idx {
		n := d.nodes[i]
		recompute = append(recompute, n)
		for _, in := range n.Input {
			switch {
			case in == "":
			case d.inits[in] != nil:
				if _, ok := d.residual[in]; !ok {
					d.fwdValue(in)
				}
			case d.inputs[in]:
				inputsUsed[in] = true
			}
		}
		for _, o := range n.Output {
			d.bg.Declare(d.value(o))
		}
	}
	used := make([]string, 0, len(inputsUsed))
	for name := range inputsUsed {
		used = append(used, name)
	}
	sort.Strings(used)
	for _, name := range used {
		res.Inputs = append(res.Inputs, d.bg.InputShaped(name, d.value(name).DType, d.value(name).Shape))
	}
	return recompute
}

// finish wires the residuals: as forward outputs and backward inputs (Stash), or by copying the
// forward nodes that compute them into the backward graph (Recompute).
func (d *diff) finish(res *Result, cot builder.Value) {
	d.rematerialize()
	names := make([]string, 0, len(d.residual))
	for name := range d.residual {
		if d.inits[name] == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var fromInputs, intermediates []string
	for _, name := range names {
		if d.inputs[name] {
			fromInputs = append(fromInputs, name)
		} else {
			intermediates = append(intermediates, name)
		}
	}
	pb := d.bg.Proto()
	if d.policy == Stash {
		for _, name := range fromInputs {
			res.Inputs = append(res.Inputs, d.bg.InputShaped(name, d.value(name).DType, d.value(name).Shape))
		}
		for _, name := range intermediates {
			v := d.value(name)
			d.fwd.Output(v, name)
			res.Residuals = append(res.Residuals, v)
			res.Inputs = append(res.Inputs, d.bg.InputShaped(name, v.DType, v.Shape))
		}
	} else {
		pb.Node = append(d.recompute(res, fromInputs, intermediates), pb.Node...)
	}
	// The cotangent input was declared first; keep it last in Inputs, and in the proto order.
	res.Inputs = append(res.Inputs, cot)
	in := pb.Input
	pb.Input = append(in[1:], in[0])
}
