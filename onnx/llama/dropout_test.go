package llama

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestModuleIndex: modules are numbered layer by layer in HF order among the targets, the
// order of LoRASpec.Inputs.
func TestModuleIndex(t *testing.T) {
	qv := LoRASpec{Targets: []string{"v_proj", "q_proj"}, Rank: 8}
	all := LoRASpec{Targets: []string{"down_proj", "q_proj", "o_proj"}, Rank: 8}
	for _, c := range []struct {
		spec   LoRASpec
		layer  int
		module string
		want   int
		ok     bool
	}{
		{qv, 0, "q_proj", 0, true},
		{qv, 0, "v_proj", 1, true},
		{qv, 3, "q_proj", 6, true},
		{qv, 3, "v_proj", 7, true},
		{qv, 1, "k_proj", 0, false},
		{all, 1, "q_proj", 3, true},
		{all, 1, "o_proj", 4, true},
		{all, 1, "down_proj", 5, true},
	} {
		got, ok := c.spec.ModuleIndex(c.layer, c.module)
		if got != c.want || ok != c.ok {
			t.Errorf("%v.ModuleIndex(%d, %s) = %d, %v; want %d, %v", c.spec.Targets, c.layer, c.module, got, ok, c.want, c.ok)
		}
	}
	// The same order as Inputs: the i-th A matrix belongs to module i.
	ck := testCheckpoint(t, true)
	for i, in := range qv.Inputs(ck.Config) {
		if m, _ := qv.ModuleIndex(in.Layer, in.Module); m != i/2 {
			t.Errorf("input %s: module index %d, want %d", in.Name, m, i/2)
		}
	}
}

// TestDropoutMaskStatistics: on 2048 × 1024 masks, the keep rate is within 1% of 1-p (and
// within 6 standard errors), and masks look like independent Bernoulli draws: the correlation
// between neighbouring elements, rows, modules and seeds is within 6/sqrt(N) of 0, and the
// number of positions where two rows (or two columns) both drop, over 19 900 pairs, is what
// independent lines give (see jointDrops): a hash whose rows were shifted or scaled
// copies of one another would shift those counts.
func TestDropoutMaskStatistics(t *testing.T) {
	const rows, cols = 2048, 1024
	for _, p := range []float64{0.05, 0.1, 0.5} {
		keep := DropoutMask(42, 0, rows, cols, p)
		n := float64(len(keep))
		rate := float64(count(keep)) / n
		if se := math.Sqrt(p * (1 - p) / n); math.Abs(rate-(1-p)) > min(0.01*(1-p), 6*se) {
			t.Errorf("p %g: keep rate %.5f, want %.5f ± %.2g", p, rate, 1-p, 6*se)
		}
		others := map[string][2][]bool{
			"next column":     {keep[:len(keep)-1], keep[1:]},
			"next row":        {keep[:len(keep)-cols], keep[cols:]},
			"module 1":        {keep, DropoutMask(42, 1, rows, cols, p)},
			"seed 43":         {keep, DropoutMask(43, 0, rows, cols, p)},
			"seed 42 + 2^31":  {keep, DropoutMask(42+1<<31, 0, rows, cols, p)},
			"seed -42":        {keep, DropoutMask(-42, 0, rows, cols, p)},
			"module 1 seed 1": {DropoutMask(0, 1, rows, cols, p), DropoutMask(1, 0, rows, cols, p)},
		}
		for name, pair := range others {
			if r := correlation(pair[0], pair[1]); math.Abs(r) > 6/math.Sqrt(n) {
				t.Errorf("p %g: correlation with %s %.3g, want |r| ≤ %.3g", p, name, r, 6/math.Sqrt(n))
			}
		}
		for _, byRows := range []bool{true, false} {
			if mean, variance := jointDrops(keep, rows, cols, 200, byRows); math.Abs(mean) > 0.05 || math.Abs(variance-1) > 0.05 {
				t.Errorf("p %g, pairs of %s: joint drops z-scores have mean %.3g, variance %.3g; want 0 ± 0.05, 1 ± 0.05",
					p, map[bool]string{true: "rows", false: "columns"}[byRows], mean, variance)
			}
		}
	}
}

func count(keep []bool) int {
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	return n
}

// correlation is Pearson's r of two bool sequences.
func correlation(a, b []bool) float64 {
	var sa, sb, sab float64
	for i := range a {
		if a[i] {
			sa++
		}
		if b[i] {
			sb++
		}
		if a[i] && b[i] {
			sab++
		}
	}
	n := float64(len(a))
	ma, mb := sa/n, sb/n
	return (sab/n - ma*mb) / math.Sqrt(ma*(1-ma)*mb*(1-mb))
}

// jointDrops standardises, for every pair among the first `first` rows (or columns), the number
// of positions where both drop: given each line's own number of drops d_a, d_b out of k, two
// independent lines share a hypergeometric count (mean d_a·d_b/k, variance
// d_a·d_b·(k-d_a)·(k-d_b)/(k²(k-1))). It returns the mean and variance of the z-scores: 0 and 1
// for independent lines (math/rand masks of this size give |mean| < 0.015, variance 1 ± 0.016).
func jointDrops(keep []bool, rows, cols, first int, byRows bool) (mean, variance float64) {
	at := func(i, j int) bool { return keep[i*cols+j] }
	length := cols
	if !byRows {
		at = func(i, j int) bool { return keep[j*cols+i] }
		length = rows
	}
	drops := make([]float64, first)
	for a := range drops {
		for j := 0; j < length; j++ {
			if !at(a, j) {
				drops[a]++
			}
		}
	}
	k := float64(length)
	var zs []float64
	for a := 0; a < first; a++ {
		for b := a + 1; b < first; b++ {
			n := 0
			for j := 0; j < length; j++ {
				if !at(a, j) && !at(b, j) {
					n++
				}
			}
			da, db := drops[a], drops[b]
			sd := math.Sqrt(da * db * (k - da) * (k - db) / (k * k * (k - 1)))
			zs = append(zs, (float64(n)-da*db/k)/sd)
		}
	}
	for _, z := range zs {
		mean += z
	}
	mean /= float64(len(zs))
	for _, z := range zs {
		variance += (z - mean) * (z - mean)
	}
	return mean, variance / float64(len(zs)-1)
}

// TestDropoutMaskLayout: a mask is a deterministic function of (seed, module, row, column):
// fewer rows give a prefix, p = 0 keeps everything, and p near 1 drops almost everything.
func TestDropoutMaskLayout(t *testing.T) {
	long := DropoutMask(7, 3, 20, 33, 0.3)
	if !slices.Equal(long[:10*33], DropoutMask(7, 3, 10, 33, 0.3)) || !slices.Equal(long, DropoutMask(7, 3, 20, 33, 0.3)) {
		t.Error("a 10-row mask is not the prefix of the 20-row mask of the same seed and module")
	}
	if n := count(DropoutMask(7, 3, 50, 64, 0)); n != 50*64 {
		t.Errorf("p = 0 keeps %d of %d", n, 50*64)
	}
	if n := count(DropoutMask(7, 3, 50, 64, 0.999999)); n > 2 {
		t.Errorf("p = 0.999999 keeps %d of %d", n, 50*64)
	}
}

// TestHashExact: every integer the hash computes stays below 2^63, so int64 arithmetic in Go
// and in ONNX Runtime is exact: the Go functions agree with arbitrary-precision arithmetic on
// extreme and random lanes, and the largest intermediates are bounded as the comments say.
func TestHashExact(t *testing.T) {
	top := int64(hashLane - 1)
	if new(big.Int).Mul(big.NewInt(top), big.NewInt(top)).BitLen() > 62 || top*top/hashShift+2*top >= 1<<62 {
		t.Fatal("lane products exceed 62 bits")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	lanes := []int64{0, 1, 2, top - 1, top}
	for range 200 {
		lanes = append(lanes, rng.Int64N(hashLane))
	}
	lane, shift, wide := big.NewInt(hashLane), big.NewInt(hashShift), big.NewInt(hashWide)
	for i, l := range lanes {
		r := lanes[(i*7+3)%len(lanes)]
		gl, gr := feistel(l, r)
		bl, br := big.NewInt(l), big.NewInt(r)
		for _, c := range feistelConstants {
			sq := new(big.Int).Div(new(big.Int).Mul(br, br), shift)
			bl, br = br, new(big.Int).Mod(sq.Add(sq, bl).Add(sq, big.NewInt(c)), lane)
		}
		if bl.Int64() != gl || br.Int64() != gr {
			t.Fatalf("feistel(%d, %d) = %d, %d; exact %v, %v", l, r, gl, gr, bl, br)
		}
		u, z, v, w := l, r, lanes[(i*3+1)%len(lanes)], lanes[(i*5+2)%len(lanes)]
		x := new(big.Int).Div(new(big.Int).Mul(big.NewInt(u), big.NewInt(v)), shift)
		x.Add(x, big.NewInt(w)).Mod(x, lane)
		y := new(big.Int).Mul(x, x)
		y.Add(y, new(big.Int).Mul(big.NewInt(z), shift)).Mod(y, wide)
		theta := dropoutThreshold(0.37)
		want := y.Cmp(big.NewInt(theta*hashShift)) < 0
		if keepElement(u, z, v, w, theta) != want {
			t.Fatalf("keepElement(%d, %d, %d, %d) disagrees with exact arithmetic", u, z, v, w)
		}
	}
	s0, s1 := seedLanes(math.MinInt64)
	if s0 < 0 || s0 >= hashLane || s1 < 0 || s1 >= hashLane {
		t.Errorf("seed lanes of MinInt64: %d, %d", s0, s1)
	}
}
