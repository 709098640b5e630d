package autodiff

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/builder"
)

// The numerical checks of every rule run on ONNX Runtime (runtime/vjp_test.go); these cover
// what needs no runtime: errors, pruning and the residual bookkeeping of each policy.

func TestDifferentiateErrors(t *testing.T) {
	build := func() (*builder.Graph, builder.Value) {
		g := builder.New("f")
		x := g.Input("x", builder.Float32, 3)
		ids := g.Input("ids", builder.Int64, 3)
		y := g.Output(g.Mul(g.Exp(x), g.Cast(ids, builder.Float32)), "y")
		g.Output(g.Op("Erf", builder.Float32, x.Shape, []builder.Value{x}), "z")
		return g, y
	}
	for _, c := range []struct {
		output string
		wrt    []string
		want   string
	}{
		{"y", []string{"nope"}, "neither an input nor an initializer"},
		{"y", []string{"ids"}, "non-float"},
		{"missing", []string{"x"}, "no output missing"},
		{"z", []string{"x"}, "no gradient rule for op Erf"},
	} {
		g, _ := build()
		_, err := Differentiate(g, c.output, c.wrt, Stash)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Differentiate(%s, %v): %v, want %q", c.output, c.wrt, err, c.want)
		}
	}
}

// TestResidualPolicies: under Stash the forward graph gains the residual outputs and the
// backward graph no forward nodes; under Recompute the forward graph is unchanged and the
// backward graph recomputes what it reads. Frozen branches get no gradient nodes.
func TestResidualPolicies(t *testing.T) {
	for _, p := range []Policy{Stash, Recompute} {
		g := builder.New("f")
		x := g.Input("x", builder.Float32, 4)
		frozen := g.Input("frozen", builder.Float32, 4)
		h := g.Sigmoid(g.Mul(x, x))
		y := g.Output(g.Add(g.Mul(h, g.Exp(frozen)), g.Exp(frozen)), "y")
		_ = y
		outsBefore := len(g.Proto().Output)
		res, err := Differentiate(g, "y", []string{"x"}, p)
		if err != nil {
			t.Fatal(err)
		}
		bw := res.Backward.Proto()
		var copied int
		for _, n := range bw.Node {
			if !strings.HasPrefix(n.GetName(), "backward/") && !strings.HasPrefix(n.GetName(), "grad/") {
				copied++ // a forward node
			}
		}
		switch p {
		case Stash:
			if len(res.Residuals) == 0 || len(g.Proto().Output) != outsBefore+len(res.Residuals) || copied != 0 {
				t.Errorf("stash: %d residuals, %d forward outputs, %d forward nodes in backward", len(res.Residuals), len(g.Proto().Output), copied)
			}
		case Recompute:
			if len(res.Residuals) != 0 || len(g.Proto().Output) != outsBefore || copied == 0 {
				t.Errorf("recompute: %d residuals, %d forward outputs, %d forward nodes in backward", len(res.Residuals), len(g.Proto().Output), copied)
			}
		}
		if len(res.Grads) != 1 || res.Grads[0].Name != "grad.x" {
			t.Errorf("grads %v", res.Grads)
		}
		for _, in := range bw.Input {
			if in.GetName() == "grad.frozen" {
				t.Error("frozen input got a gradient")
			}
		}
	}
}

// TestRematerialize: values the forward graph marks rematerializable are recomputed by the
// backward graph, under names of their own, from what it keeps (here the frozen input h and a bool mask) instead of being
// stashed; a mask computed from an int64 seed is constant (no gradient) and, under Recompute,
// is recomputed from the seed, which becomes a backward input.
func TestRematerialize(t *testing.T) {
	for _, p := range []Policy{Stash, Recompute} {
		g := builder.New("f")
		a := g.Input("a", builder.Float32, 4, 3)
		h := g.Input("h", builder.Float32, 5, 4)
		seed := g.Input("seed", builder.Int64, 1)
		cells := g.Reshape(g.Range(g.ConstInt64([]int64{0}), g.ConstInt64([]int64{20}), g.ConstInt64([]int64{1})), 5, 4)
		keep := g.Less(g.Mod(g.Mul(g.Add(cells, seed), g.ConstInt64([]int64{7919}, 1)), g.ConstInt64([]int64{10}, 1)), g.ConstInt64([]int64{8}, 1))
		scaled := g.MarkRematerializable(g.Mul(h, g.Scalar(builder.Float32, 1.25)))
		dropped := g.MarkRematerializable(g.Where(keep, scaled, g.Scalar(builder.Float32, 0)))
		g.Output(g.Gemm(dropped, a, false, false), "y")
		res, err := Differentiate(g, "y", []string{"a"}, p)
		if err != nil {
			t.Fatal(err)
		}
		var residuals, inputs []string
		for _, r := range res.Residuals {
			residuals = append(residuals, r.Name)
		}
		for _, in := range res.Inputs {
			inputs = append(inputs, in.Name)
		}
		wantResiduals, wantInputs := []string{keep.Name}, []string{"h", keep.Name, "grad.y"}
		if p == Recompute {
			wantResiduals, wantInputs = nil, []string{"h", "seed", "grad.y"}
		}
		if fmt.Sprint(residuals) != fmt.Sprint(wantResiduals) || fmt.Sprint(inputs) != fmt.Sprint(wantInputs) {
			t.Errorf("%s: residuals %v, backward inputs %v; want %v, %v", p, residuals, inputs, wantResiduals, wantInputs)
		}
		produced, read := map[string]bool{}, map[string]bool{}
		for _, n := range res.Backward.Proto().Node {
			for _, o := range n.Output {
				produced[o] = true
			}
			for _, in := range n.Input {
				read[in] = true
			}
		}
		if !produced[dropped.Name+"/remat"] || !produced[scaled.Name+"/remat"] {
			t.Errorf("%s: the backward graph does not recompute the dropped input", p)
		}
		if read[dropped.Name] || read[scaled.Name] {
			t.Errorf("%s: the backward graph reads the forward's own copy of a rematerialized value", p)
		}
	}
}
