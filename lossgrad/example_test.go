package lossgrad_test

import (
	"fmt"

	"github.com/bearrec/bear/lossgrad"
)

// MSL and BEAR on three supervised positions with 3, 3 and 1 allowed tokens. With a beam
// width of 2, the first position's positive (2nd of 3) is inside the beam and the second's
// (3rd of 3) is not: a violation. MSL weighs every position 1/N; BEAR's coefficients follow
// w = 1 + Lambda*sigmoid((log p_t - log beta)/Xi). The single-token position counts in MSL's
// mean but has neither loss nor gradient.
func ExampleObjective_Compute() {
	b := lossgrad.LogitSlices[float64]{
		Logits:  []float64{2, 1, 0, 0.5, 1.5, 1, 3}, // positions [0,3), [3,6), [6,7)
		Offsets: []int{0, 3, 6, 7},
		Targets: []int{1, 0, 0}, // index of the positive within each position's logits
	}
	grad := make([]float64, len(b.Logits))
	diag := make([]lossgrad.Position, len(b.Targets))
	for _, kind := range []lossgrad.Kind{lossgrad.MSL, lossgrad.BEAR} {
		cfg := lossgrad.DefaultConfig(kind)
		cfg.K = 2
		obj, err := lossgrad.NewObjective[float64](cfg)
		if err != nil {
			panic(err)
		}
		res, err := obj.Compute(b, grad, diag)
		obj.Close()
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: loss %.4f, violations %d, weights %.4f %.4f\n",
			kind, res.Loss, res.Violations, diag[0].Weight, diag[1].Weight)
		fmt.Printf("  dL/dlogits %.4f\n", grad)
	}
	// Output:
	// msl: loss 1.0293, violations 1, weights 0.3333 0.3333
	//   dL/dlogits [0.2217 -0.2518 0.0300 -0.2712 0.1688 0.1024 0.0000]
	// bear: loss 1.5432, violations 1, weights 0.5025 0.4975
	//   dL/dlogits [0.3343 -0.3795 0.0452 -0.4048 0.2520 0.1528 0.0000]
}
