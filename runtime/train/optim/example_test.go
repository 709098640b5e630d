package optim_test

import (
	"fmt"

	"github.com/bearrec/bear/runtime/train/optim"
)

// Four optimizer steps on one 2-element parameter, in the Hugging Face Trainer's order: clip
// the gradient to norm 1, take the scheduled rate (1 warm-up step of 4), step AdamW. The first
// step runs at rate 0: it updates the moments only.
func Example() {
	p := optim.Param{Name: "w", Value: []float32{1, -1}, Grad: make([]float32, 2)}
	params := []optim.Param{p}
	opt, err := optim.NewAdamW(optim.DefaultAdamW(), params)
	if err != nil {
		panic(err)
	}
	sched := optim.LinearWarmup{Warmup: 1, Total: 4}
	for step := 0; step < 4; step++ {
		copy(p.Grad, []float32{3 * p.Value[0], 4}) // a toy gradient, written in place as backward does
		norm := optim.ClipGradNorm(params, 1.0)
		lr := sched.LR(0.1, step)
		opt.Step(lr)
		fmt.Printf("step %d: grad norm %.4f, lr %.4f, value [%.4f %.4f]\n",
			step, norm, lr, p.Value[0], p.Value[1])
	}
	// Output:
	// step 0: grad norm 5.0000, lr 0.0000, value [1.0000 -1.0000]
	// step 1: grad norm 5.0000, lr 0.1000, value [0.9000 -1.1000]
	// step 2: grad norm 4.8260, lr 0.0667, value [0.8335 -1.1667]
	// step 3: grad norm 4.7173, lr 0.0333, value [0.8004 -1.2002]
}
