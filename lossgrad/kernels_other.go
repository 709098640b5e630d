//go:build !amd64 || purego

package lossgrad

var useAVX2 = false

func expStoreVec(x, g []float32, m, it float64) (sum float64, done int) { return 0, 0 }
func scaleVec(g []float32, a float64) int                               { return 0 }
func scanAboveVec(x []float32, thr float32) (int, uint32)               { return 0, 0xffff }
