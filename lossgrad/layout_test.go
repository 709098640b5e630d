package lossgrad

import (
	"math"
	"strings"
	"testing"
)

// TestGatherScatter: MSL through GatherAllowed/ScatterAllowed equals LML over a dense row
// whose disallowed logits are -Inf (the official masking), gradient included.
func TestGatherScatter(t *testing.T) {
	const vocab = 7
	dense := []float32{
		0.5, 1, -2, 3, 0, 0.25, 9,
		4, -1, 2, 2, 8, 1, 0,
	}
	allowed := [][]int32{{1, 3, 5}, {0, 2, 3, 6}}
	targets := []int32{3, 6} // token ids: index 1 of the first set, 3 of the second
	var b LogitSlices[float32]
	if err := GatherAllowed(dense, vocab, allowed, []int{1, 3}, &b); err != nil {
		t.Fatal(err)
	}
	if got := b.Logits; len(got) != 7 || got[1] != 3 || got[3] != 4 || b.Targets[0] != 1 || b.Targets[1] != 3 {
		t.Fatalf("gathered %+v", b)
	}
	grad := make([]float32, len(b.Logits))
	r, err := computeOnce(DefaultConfig(MSL), b, grad, nil)
	if err != nil {
		t.Fatal(err)
	}
	gd := make([]float32, len(dense))
	if err := ScatterAllowed(grad, allowed, vocab, gd); err != nil {
		t.Fatal(err)
	}
	masked := make([]float64, len(dense))
	for i := range masked {
		masked[i] = math.Inf(-1)
	}
	for i, ids := range allowed {
		for _, id := range ids {
			masked[i*vocab+int(id)] = float64(dense[i*vocab+int(id)])
		}
	}
	db, err := DenseLogitSlices(masked, vocab, targets, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g64 := make([]float64, len(masked))
	r64, err := computeOnce(DefaultConfig(LML), db, g64, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Loss-r64.Loss) > 1e-6 {
		t.Errorf("loss %v vs masked dense %v", r.Loss, r64.Loss)
	}
	for i := range gd {
		if math.Abs(float64(gd[i])-g64[i]) > 1e-7 {
			t.Errorf("dense grad[%d] %v vs %v", i, gd[i], g64[i])
		}
	}
	if err := GatherAllowed(dense, vocab, allowed, []int{1, 4}, &b); err == nil || !strings.Contains(err.Error(), "position 1: target index 4 outside its 4 allowed tokens") {
		t.Errorf("target outside the allowed set: %v", err)
	}
	if err := GatherAllowed(dense, vocab, [][]int32{{1}, {7}}, []int{0, 0}, &b); err == nil || !strings.Contains(err.Error(), "position 1: column 7 out of range") {
		t.Errorf("column outside the rows: %v", err)
	}
	if _, err := DenseLogitSlices(dense, vocab, []int32{3, 7}, nil, nil); err == nil || !strings.Contains(err.Error(), "position 1: target token 7 out of range") {
		t.Errorf("dense target out of range: %v", err)
	}
}
