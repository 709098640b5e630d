//go:build amd64 && !purego

package lossgrad

// AVX2+FMA kernels for the float32 path (kernels_amd64.s); the portable Go loops in
// kernels.go remain the fallback and the reference the tests compare them with. Build with
// -tags purego to force the portable loops.
//
// The float32 path keeps log p_t, log beta_t, the loss and the softmax sum in float64 and
// computes the exponentials here: Cephes' expf, about 1e-7 relative, on (z - max)/tau rounded
// to float32, which adds 6e-8*|z - max|/tau; the float32 gradient has 6e-8 anyway, and the
// loss moves by about 1e-8 relative. Float32 slices of 16 384 logits or more (LML's
// vocabulary) are processed block by block: the top-K scan and the exponentials run on the
// same block while it is in L1, each block relative to the running maximum, and the final
// scaling pass folds in the correction exp((M_block - M)/tau), so the logits are read from
// memory once.

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
func xgetbv0() (eax uint32)

//go:noescape
func expStoreAVX2(x, out *float32, n int, m, it float32) float64

//go:noescape
func scaleAVX2(out *float32, n int, a float32)

//go:noescape
func scanAboveAVX2(x *float32, n int, thr float32) (skip int, mask uint32)

// useAVX2 is true when the CPU and the OS support AVX2 and FMA (tests may switch it off).
var useAVX2 = func() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&fma == 0 || c1&osxsave == 0 || c1&avx == 0 {
		return false
	}
	if xgetbv0()&6 != 6 { // XMM and YMM state enabled by the OS
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	return b7&(1<<5) != 0
}()

func expStoreVec(x, g []float32, m, it float64) (sum float64, done int) {
	if !useAVX2 || len(x) < 8 {
		return 0, 0
	}
	n := len(x) &^ 7
	return expStoreAVX2(&x[0], &g[0], n, float32(m), float32(it)), n
}

func scaleVec(g []float32, a float64) int {
	if !useAVX2 || len(g) < 8 {
		return 0
	}
	n := len(g) &^ 7
	scaleAVX2(&g[0], n, float32(a))
	return n
}

func scanAboveVec(x []float32, thr float32) (skip int, mask uint32) {
	if !useAVX2 || len(x) < 16 {
		return 0, 0xffff
	}
	return scanAboveAVX2(&x[0], len(x), thr)
}
