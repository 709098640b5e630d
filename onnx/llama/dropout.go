package llama

import (
	"fmt"
	"math"

	"github.com/bearrec/bear/onnx/builder"
	"github.com/bearrec/bear/onnx/hf"
)

// Why the masks are made inside the graph: PEFT applies dropout to the input of each LoRA
// branch only, B(A(dropout(x)))·scaling, with a fresh Bernoulli(1-p) mask per module and step
// over x [batch·seq, in]. A mask fed from Go would have to exist in memory for the whole step,
// for every module (at the Llama-3.2-1B shape with LoRA on q_proj and v_proj, 32 modules of
// in = 2048: 64 KiB of bools per token), and cross to the device each step. Hashed from the
// step's seed, it needs no memory outside ONNX Runtime and nothing crosses the host boundary
// but one int64; the forward and backward graphs of a step see the same mask when given the
// same seed, and distinct modules (q and v of one layer, other layers) get independent masks.
//
// The mask is an integer subgraph, so autodiff never differentiates it. Under the Recompute
// policy the backward graph recomputes it from dropout_seed (an input of both graphs). Under
// Stash the backward graph keeps the bool mask (1 byte per element) rather than rerunning the
// hash (about 8 int64 operations per element), and recomputes x·keep/(1-p) from the normed
// hidden state that Stash keeps anyway (apply marks the dropped input rematerializable), so no
// float copy of x per module is kept. BenchmarkLoRADropout (runtime/ortrun) measures the cost.

// LoRA dropout masks are a counter-based hash of (seed, module index, row, column), computed
// inside the forward graph with int64 Mul, Div, Mod, Add and Less only, and reproduced bit for
// bit by DropoutMask. Every intermediate is a non-negative integer below 2^63, so int64
// arithmetic is exact, Div is a floor division and Mod a floor modulus in ONNX Runtime and Go
// alike.
//
//  1. The seed (any int64; only its value modulo 2^62 matters) is split into two 31-bit lanes
//     s0 = seed mod 2^31, s1 = ⌊seed / 2^31⌋ mod 2^31.
//  2. Module m's key (ka, kb) = F((a_m + s1) mod 2^31, (b_m + s0) mod 2^31), where
//     (a_m, b_m) = F(m, 0): the module index is mixed in before the seed, so small seed steps
//     and small module steps never cancel.
//  3. Row r gets (u_r, z_r) = F(ka, (kb + r) mod 2^31) and column c gets
//     (v_c, w_c) = F((ka + 1) mod 2^31, (kb + c) mod 2^31): a few hundred values per module.
//  4. Element (r, c) is kept when the middle-square step
//     x = (⌊u_r·v_c / 2^16⌋ + w_c) mod 2^31, y = (x² + z_r·2^16) mod 2^47
//     gives y < θ·2^16 with θ = round((1-p)·2^31), i.e. when bits 16..46 of x² + z_r·2^16 are
//     below θ: a keep probability of θ/2^31.
//
// F is an 8-round Feistel network on two 31-bit lanes, (l, r) → (r, (l + ⌊r²/2^16⌋ + c_j)
// mod 2^31), with round constants c_j from the golden ratio: a bijection of the pair whatever
// its round function, so distinct (key, counter) pairs never collide, and middle squares are
// the nonlinearity that int64 arithmetic without XOR or shifts offers. The per-element step
// (8 ops) is the only work proportional to the mask's size; the product u_r·v_c and the two
// middle-bit extractions keep rows and columns from sharing patterns (tested against the
// joint statistics of independent Bernoulli masks in dropout_test.go).
const (
	hashLane  = 1 << 31 // lane modulus: every hash value lies in [0, 2^31)
	hashShift = 1 << 16 // middle-square: ⌊v / 2^16⌋ drops the low bits of a square
	hashWide  = 1 << 47 // the final square keeps bits below 47, compared from bit 16 up
)

// feistelConstants are ⌊(j+1)·φ·2^64⌋ mod 2^64, top 31 bits, for the rounds j = 0..7.
var feistelConstants = func() [8]int64 {
	var c [8]int64
	for j := range c {
		c[j] = int64((uint64(0x9E3779B97F4A7C15) * uint64(j+1)) >> 33)
	}
	return c
}()

// feistel is F on two lanes in [0, 2^31).
func feistel(l, r int64) (int64, int64) {
	for _, c := range feistelConstants {
		l, r = r, (l+r*r/hashShift+c)%hashLane
	}
	return l, r
}

// seedLanes splits a seed into its two 31-bit lanes (floor division and modulus).
func seedLanes(seed int64) (s0, s1 int64) {
	s0 = (seed%hashLane + hashLane) % hashLane
	s1 = ((seed-s0)/hashLane%hashLane + hashLane) % hashLane
	return s0, s1
}

// moduleKey is step 2 for module m.
func moduleKey(seed int64, module int) (ka, kb int64) {
	a, b := feistel(int64(module), 0)
	s0, s1 := seedLanes(seed)
	return feistel((a+s1)%hashLane, (b+s0)%hashLane)
}

// dropoutThreshold is θ: an element is kept when its hash (in [0, 2^31)) is below θ.
func dropoutThreshold(p float64) int64 {
	return int64(math.Round(min(1, max(0, 1-p)) * hashLane))
}

// keepElement is step 4.
func keepElement(u, z, v, w, theta int64) bool {
	x := (u*v/hashShift + w) % hashLane
	return (x*x+z*hashShift)%hashWide < theta*hashShift
}

// DropoutMask is the keep mask the forward graph applies to the input of LoRA module `module`
// (see LoRASpec.ModuleIndex) for dropout_seed = seed: rows × cols values in row-major order,
// true where x[r, c] is kept (and scaled by 1/(1-p)), false where it is zeroed. Rows are the
// flat token positions b·seq + t of the batch, padding included; cols is the module's input
// width. Row r's mask does not depend on rows, so a longer batch extends a shorter one's mask.
// p is clamped to [0, 1].
func DropoutMask(seed int64, module, rows, cols int, p float64) []bool {
	ka, kb := moduleKey(seed, module)
	theta := dropoutThreshold(p)
	v, w := make([]int64, cols), make([]int64, cols)
	for c := range cols {
		v[c], w[c] = feistel((ka+1)%hashLane, (kb+int64(c))%hashLane)
	}
	keep := make([]bool, rows*cols)
	for r := range rows {
		u, z := feistel(ka, (kb+int64(r))%hashLane)
		for c := range cols {
			keep[r*cols+c] = keepElement(u, z, v[c], w[c], theta)
		}
	}
	return keep
}

// ModuleIndex numbers the adapted modules for dropout masks: layer by layer, and within a layer
// in HF module order (q, k, v, o, gate, up, down) among the targeted ones, which is the order of
// Inputs. With targets q_proj and v_proj, layer l's q_proj is 2l and its v_proj 2l+1. ok is
// false when the module is not targeted.
func (s LoRASpec) ModuleIndex(layer int, module string) (index int, ok bool) {
	perLayer, within := 0, -1
	for _, m := range hf.Modules {
		if !s.targets(m) {
			continue
		}
		if m == module {
			within = perLayer
		}
		perLayer++
	}
	if within < 0 {
		return 0, false
	}
	return layer*perLayer + within, true
}

// dropout holds the per-forward tensors every LoRA module's mask is cut from.
type dropout struct {
	p      float64
	theta  int64
	u, zz  builder.Value // int64 [modules, rows]: u_r and z_r·2^16
	v, w   builder.Value // int64 [modules, maxIn]: v_c and w_c
	widest int
}

// hashConst is an int64 constant of the hash: a [1] tensor, broadcast against anything.
func hashConst(g *builder.Graph, v int64) builder.Value { return g.ConstInt64([]int64{v}, 1) }

// feistelGraph is F on tensors of lanes (broadcast against each other).
func feistelGraph(g *builder.Graph, l, r builder.Value) (builder.Value, builder.Value) {
	lane, shift := hashConst(g, hashLane), hashConst(g, hashShift)
	for _, c := range feistelConstants {
		mixed := g.Add(g.Add(l, g.Div(g.Mul(r, r), shift)), hashConst(g, c))
		l, r = r, g.Mod(mixed, lane)
	}
	return l, r
}

// dropoutKeys builds steps 1 to 3 for every module at once from the seed input and the hidden
// state x [rows, hidden] (for the number of rows).
func (e *exporter) dropoutKeys(seed, x builder.Value) *dropout {
	g := e.g
	prefix := g.Prefix()
	defer g.SetPrefix(prefix)
	g.SetPrefix("dropout")
	var a, b []int64
	widest := 0
	for _, in := range e.opt.LoRA.Inputs(e.cfg) {
		if in.Which == "A" {
			ma, mb := feistel(int64(len(a)), 0)
			a, b = append(a, ma), append(b, mb)
			widest = max(widest, in.Cols)
		}
	}
	n := int64(len(a))
	lane := hashConst(g, hashLane)
	s0 := g.Mod(seed, lane)
	s1 := g.Mod(g.Div(g.Sub(seed, s0), lane), lane)
	ka, kb := feistelGraph(g, g.Mod(g.Add(g.ConstInt64(a, n), s1), lane), g.Mod(g.Add(g.ConstInt64(b, n), s0), lane))
	ka, kb = g.Unsqueeze(ka, 1), g.Unsqueeze(kb, 1) // [modules, 1]
	zero, one := g.ConstInt64([]int64{0}), g.ConstInt64([]int64{1})
	rows := g.Range(zero, g.Squeeze(g.ShapeDim(x, 0), 0), one)
	u, z := feistelGraph(g, ka, g.Mod(g.Add(kb, g.Unsqueeze(rows, 0)), lane))
	cols := g.Range(zero, g.ConstInt64([]int64{int64(widest)}), one)
	v, w := feistelGraph(g, g.Mod(g.Add(ka, one), lane), g.Mod(g.Add(kb, g.Unsqueeze(cols, 0)), lane))
	d := &dropout{p: e.opt.LoRADropout, theta: dropoutThreshold(e.opt.LoRADropout), widest: widest}
	d.u, d.zz, d.v, d.w = u, g.Mul(z, hashConst(g, hashShift)), v, w
	return d
}

// keep is step 4 for module m on an input of width in: bool [rows, in].
func (d *dropout) keep(g *builder.Graph, m, in int) builder.Value {
	pick := func(t builder.Value, axis int64) builder.Value {
		row := g.Gather(t, g.ConstInt64([]int64{int64(m)}), 0)
		if axis == 0 && in < d.widest {
			row = g.Slice(row, g.ConstInt64([]int64{0}, 1), g.ConstInt64([]int64{int64(in)}, 1), g.ConstInt64([]int64{0}, 1),
				builder.Shape{builder.Fixed(int64(in))})
		}
		return g.Unsqueeze(row, axis)
	}
	u, zz, v, w := pick(d.u, 1), pick(d.zz, 1), pick(d.v, 0), pick(d.w, 0)
	x := g.Mod(g.Add(g.Div(g.Mul(u, v), hashConst(g, hashShift)), w), hashConst(g, hashLane))
	y := g.Mod(g.Add(g.Mul(x, x), zz), hashConst(g, hashWide))
	th := hashConst(g, d.theta*hashShift)
	prefix := g.Prefix()
	g.SetPrefix(fmt.Sprintf("lora_keep.%d", m)) // the mask's name is DropoutMaskName(m)
	defer g.SetPrefix(prefix)
	return g.Less(y, th)
}

// DropoutMaskName is the name of the bool keep mask of module m (LoRASpec.ModuleIndex) in a
// forward graph with LoRA dropout: a value of the graph that may be made an output to compare
// with DropoutMask.
func DropoutMaskName(m int) string { return fmt.Sprintf("lora_keep.%d/Less_1:0", m) }

// apply is PEFT's dropout of the LoRA input: x·keep/(1-p). Both values are marked
// rematerializable: a Stash backward recomputes them from x (which it keeps anyway) and the
// keep mask instead of keeping a scaled copy of x per module.
func (d *dropout) apply(g *builder.Graph, x, keep builder.Value) builder.Value {
	scaled := g.MarkRematerializable(g.Mul(x, g.Scalar(x.DType, 1/(1-d.p))))
	return g.MarkRematerializable(g.Where(keep, scaled, g.Scalar(x.DType, 0)))
}

// validDropout checks Options.LoRADropout.
func validDropout(o Options) error {
	p := o.LoRADropout
	if math.IsNaN(p) || p < 0 || p >= 1 {
		return fmt.Errorf("lora dropout %g: want 0 <= p < 1", p)
	}
	if p > 0 && o.LoRA == nil {
		return fmt.Errorf("lora dropout %g without LoRA modules", p)
	}
	return nil
}
