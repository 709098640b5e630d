package lossgrad

import "math"

// Portable kernels. The float32 path (logits from ONNX Runtime) first hands the bulk of
// each slice to the AVX2 kernels (kernels_amd64.s) when the CPU has them and finishes the
// tail here; without AVX2 everything runs here, with a table-driven float64 exponential
// accurate to about 1e-12 relative. The float64 path (finite differences, goldens) uses
// math.Exp.
//
// exp(d) = 2^(k/32) * exp(r), k = round(d*32/ln2), r = d - k*ln2/32, |r| <= ln2/64;
// exp(r) - 1 is a degree-5 Taylor polynomial (remainder below 3e-15).

const (
	expTabBits = 5
	expTabSize = 1 << expTabBits
	// ln2Hi has trailing zero bits so that k*ln2Hi is exact; same split as fdlibm.
	ln2Hi      = 6.93147180369123816490e-01
	ln2Lo      = 1.90821492927058770002e-10
	invLn2N    = expTabSize / math.Ln2
	ln2NHi     = ln2Hi / expTabSize
	ln2NLo     = ln2Lo / expTabSize
	roundMagic = 0x1.8p52 // adding it rounds a float64 of magnitude < 2^51 to an integer
	// expLow is where the result would leave the normal range; below it exp returns 0,
	// a relative change below 1e-300 of a softmax sum whose largest term is 1.
	expLow = -708.0
)

var expTab = func() (t [expTabSize]uint64) {
	for j := range t {
		t[j] = math.Float64bits(math.Exp2(float64(j) / expTabSize))
	}
	return
}()

// fastExp is the scalar form of the exponential used by expStore32 (kept for tests).
func fastExp(d float64) float64 {
	if !(d > expLow) {
		if d != d {
			return d
		}
		return 0
	}
	kd := d*invLn2N + roundMagic
	k := int64(int32(uint32(math.Float64bits(kd))))
	kd -= roundMagic
	r := d - kd*ln2NHi - kd*ln2NLo
	p := r + r*r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120))))
	s := math.Float64frombits(expTab[k&(expTabSize-1)] + uint64(k>>expTabBits)<<52)
	return s + s*p
}

// expStore32 writes exp((x[j]-m)*it) into g[j] and returns their float64 sum. It expects
// x[j] <= m (so the arguments are <= 0), as the caller passes the maximum.
func expStore32(x, g []float32, m, it float64) float64 {
	g = g[:len(x)]
	s0, i := expStoreVec(x, g, m, it)
	var s1 float64
	for ; i+1 < len(x); i += 2 {
		d0 := (float64(x[i]) - m) * it
		d1 := (float64(x[i+1]) - m) * it
		var e0, e1 float64
		if d0 > expLow {
			kd := d0*invLn2N + roundMagic
			k := int64(int32(uint32(math.Float64bits(kd))))
			kd -= roundMagic
			r := d0 - kd*ln2NHi - kd*ln2NLo
			p := r + r*r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120))))
			s := math.Float64frombits(expTab[k&(expTabSize-1)] + uint64(k>>expTabBits)<<52)
			e0 = s + s*p
		} else {
			e0 = fastExp(d0) // 0, or NaN for NaN
		}
		if d1 > expLow {
			kd := d1*invLn2N + roundMagic
			k := int64(int32(uint32(math.Float64bits(kd))))
			kd -= roundMagic
			r := d1 - kd*ln2NHi - kd*ln2NLo
			p := r + r*r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120))))
			s := math.Float64frombits(expTab[k&(expTabSize-1)] + uint64(k>>expTabBits)<<52)
			e1 = s + s*p
		} else {
			e1 = fastExp(d1)
		}
		g[i] = float32(e0)
		g[i+1] = float32(e1)
		s0 += e0
		s1 += e1
	}
	for ; i < len(x); i++ {
		e := fastExp((float64(x[i]) - m) * it)
		g[i] = float32(e)
		s0 += e
	}
	return s0 + s1
}

// expStore64 is expStore32 for float64 with math.Exp.
func expStore64(x, g []float64, m, it float64) float64 {
	g = g[:len(x)]
	var s0, s1 float64
	i := 0
	for ; i+1 < len(x); i += 2 {
		e0 := math.Exp((x[i] - m) * it)
		e1 := math.Exp((x[i+1] - m) * it)
		g[i], g[i+1] = e0, e1
		s0 += e0
		s1 += e1
	}
	for ; i < len(x); i++ {
		e := math.Exp((x[i] - m) * it)
		g[i] = e
		s0 += e
	}
	return s0 + s1
}

// scaleSub32 sets g[j] *= a for all j, then g[t] = e_t*a - c, in float64 arithmetic.
func scaleSub32(g []float32, a float64, t int, c float64) {
	et := float64(g[t])
	i := scaleVec(g, a)
	for ; i+3 < len(g); i += 4 {
		g[i] = float32(float64(g[i]) * a)
		g[i+1] = float32(float64(g[i+1]) * a)
		g[i+2] = float32(float64(g[i+2]) * a)
		g[i+3] = float32(float64(g[i+3]) * a)
	}
	for ; i < len(g); i++ {
		g[i] = float32(float64(g[i]) * a)
	}
	g[t] = float32(et*a - c)
}

func scaleSub64(g []float64, a float64, t int, c float64) {
	et := g[t]
	for i := range g {
		g[i] *= a
	}
	g[t] = et*a - c
}

// fuseMin is the slice length from which the float32 path fuses the top-K scan and the
// exponentials block by block (LML's 128 256 logits: one read of the logits from memory
// instead of two).
const fuseMin = 16384

// maxBlocks bounds the number of blocks of one fused position (their maxima live on the
// stack); longer slices get longer blocks.
const maxBlocks = 64

// fusedBlocks records, per block, the running maximum its exponentials are relative to.
type fusedBlocks struct {
	size int
	n    int
	max  [maxBlocks]float32
}

// fusedPass32 runs the top-K scan and the exponentials over x in blocks that stay in L1:
// after scanning a block, buf[0] is the running maximum M_b, the block's exponentials
// exp((x - M_b)*it) go to g, and the float64 sum is rescaled whenever M_b grows. It returns
// the K-th largest value (buf must have len K <= len(x)) and the sum relative to the final
// maximum buf[0]; blk keeps the M_b for blocks.scale.
func fusedPass32(x, g, buf []float32, it float64, blk *fusedBlocks) (kth float32, sum float64) {
	n := len(x)
	bs := 2048
	for (n+bs-1)/bs > maxBlocks {
		bs *= 2
	}
	blk.size, blk.n = bs, (n+bs-1)/bs
	k := len(buf)
	filled := 0
	var cur float32
	for b := 0; b < blk.n; b++ {
		lo, hi := b*bs, min((b+1)*bs, n)
		xb := x[lo:hi]
		i := 0
		for ; filled < k && i < len(xb); i++ { // first K elements: insertion sort
			v := xb[i]
			j := filled
			for j > 0 && buf[j-1] < v {
				buf[j] = buf[j-1]
				j--
			}
			buf[j] = v
			filled++
		}
		if i < len(xb) {
			scanTop(xb[i:], buf)
		}
		mb := buf[0]
		if b > 0 && mb != cur {
			sum *= math.Exp((float64(cur) - float64(mb)) * it)
		}
		cur = mb
		blk.max[b] = mb
		sum += expStore32(xb, g[lo:hi], float64(mb), it)
	}
	return buf[k-1], sum
}

// scale turns the block-relative exponentials into a*exp((x-m)*it) and then subtracts c at
// the target: g = c*(softmax - onehot) with a = c/sum.
func (blk *fusedBlocks) scale(g []float32, m, it, a float64, t int, c float64) {
	bt := t / blk.size
	var et float64
	for b := 0; b < blk.n; b++ {
		lo, hi := b*blk.size, min((b+1)*blk.size, len(g))
		f := a
		if mb := float64(blk.max[b]); mb != m {
			f *= math.Exp((mb - m) * it)
		}
		if b == bt {
			et = float64(g[t]) * f
		}
		gb := g[lo:hi]
		i := scaleVec(gb, f)
		for ; i < len(gb); i++ {
			gb[i] = float32(float64(gb[i]) * f)
		}
	}
	g[t] = float32(et - c)
}
