package builder

import (
	"strings"
	"testing"
)

func TestDimAlgebra(t *testing.T) {
	bs := sym("batch").Mul(sym("seq"))
	if got := bs.String(); got != "batch*seq" {
		t.Errorf("batch·seq = %s", got)
	}
	if got := bs.Mul(Fixed(4)).Div(sym("seq")).String(); got != "4*batch" {
		t.Errorf("4·batch·seq / seq = %s", got)
	}
	if d := sym("batch").Div(sym("seq")); d.Known() {
		t.Errorf("batch / seq = %v, want unknown", d)
	}
	if d := ParseDim("4*batch*seq"); !d.Equal(bs.Mul(Fixed(4))) {
		t.Errorf("ParseDim round trip: %v", d)
	}
	n, err := ParseDim("2*batch*seq").Eval(map[string]int64{"batch": 3, "seq": 5})
	if err != nil || n != 30 {
		t.Errorf("Eval = %d, %v", n, err)
	}
	if _, err := sym("c").Eval(nil); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("Eval of an unbound symbol: %v", err)
	}
}

// TestShapeInference checks the static shapes the ops infer, which autodiff relies on to know
// which axes broadcast.
func TestShapeInference(t *testing.T) {
	g := New("t")
	x := g.Input("x", Float32, "batch", "seq", 8)
	w := g.Input("w", Float32, 16, 8)
	flat := g.Reshape(x, -1, 8)
	cases := []struct {
		name string
		v    Value
		want string
	}{
		{"reshape -1", flat, "[batch*seq,8]"},
		{"gemm transB", g.GemmTransB(flat, w), "[batch*seq,16]"},
		{"broadcast", g.Add(x, g.Input("b", Float32, 1, 8)), "[batch,seq,8]"},
		{"unsqueeze", g.Unsqueeze(x, 1, 3), "[batch,1,seq,1,8]"},
		{"transpose", g.Transpose(x, 2, 0, 1), "[8,batch,seq]"},
		{"reduce keep", g.ReduceMean(x, -1), "[batch,seq,1]"},
		{"reduce drop", g.ReduceSum(x, false, 0, 2), "[seq]"},
		{"matmul broadcast", g.MatMul(g.Input("p", Float32, "batch", 2, 1, 4, 8), g.Input("q", Float32, "batch", 1, 3, 8, 5)), "[batch,2,3,4,5]"},
		{"gather", g.Gather(w, g.Input("i", Int64, "n"), 0), "[n,8]"},
		{"concat", g.Concat(-1, x, x), "[batch,seq,16]"},
		{"split", g.Split(x, -1, 3, 5)[1], "[batch,seq,5]"},
		{"reshape from shape values", g.ReshapeTo(flat, g.Concat(0, g.ShapeDim(x, 0), g.ShapeDim(x, 1), g.ConstInt64([]int64{2, 4}, 2))), "[batch,seq,2,4]"},
	}
	for _, c := range cases {
		if got := c.v.Shape.String(); got != c.want {
			t.Errorf("%s: shape %s, want %s", c.name, got, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("broadcasting [batch,seq,8] with [3] did not panic")
		}
	}()
	g.Add(x, g.Input("bad", Float32, 3))
}
