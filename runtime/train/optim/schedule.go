package optim

import (
	"fmt"
	"math"
)

// The Trainer's step (Trainer._inner_training_loop, src/transformers/trainer.py): clip through
// accelerate's Accelerator.clip_grad_norm_ (single device or DDP, no fp16 scaler: that is
// torch.nn.utils.clip_grad_norm_), optimizer.step(), read the learning rate it logs, then
// lr_scheduler.step() and model.zero_grad(); so the logged rate is the one the step used. It
// skips lr_scheduler.step() only when accelerate reports a skipped optimizer step (fp16
// overflow), which cannot happen here. LambdaLR's constructor (_LRScheduler.__init__ ->
// _initial_step -> step()) already steps once, from last_epoch -1 to 0, hence Factor(k) =
// lambda(k); the last step of a run (index Total-1) runs with 1/(Total-Warmup). The official
// runs use warm-up 20 and Total = the Trainer's max_steps.

// LinearWarmup is transformers' get_linear_schedule_with_warmup: the learning-rate factor
// rises linearly from 0 over Warmup optimizer steps, then falls linearly to 0 at step Total
// and stays there.
type LinearWarmup struct {
	Warmup int // num_warmup_steps
	Total  int // num_training_steps: the number of optimizer steps of the run
}

// Validate reports a schedule that cannot describe a run: a negative warm-up or fewer than
// one step. A warm-up longer than the run is allowed (transformers allows it too: the
// factor then never reaches 1).
func (s LinearWarmup) Validate() error {
	if s.Warmup < 0 {
		return fmt.Errorf("linear warm-up schedule: %d warm-up steps, want >= 0", s.Warmup)
	}
	if s.Total < 1 {
		return fmt.Errorf("linear warm-up schedule: %d total steps, want >= 1", s.Total)
	}
	return nil
}

// Factor is the multiplier of the base learning rate for the optimizer step with 0-based
// index step, in the HF Trainer's order (clip, optimizer.step, scheduler.step): the
// LambdaLR constructor already evaluates the lambda at 0, so step k runs with lambda(k),
// and with Warmup > 0 the first step runs with factor 0 (it updates the moments, not the
// values). The arithmetic is the lambda's own, in float64, so LR gives torch's value to
// the bit. A negative step, which the Trainer never asks for, gives 0.
func (s LinearWarmup) Factor(step int) float64 {
	if step < 0 {
		return 0
	}
	if step < s.Warmup {
		return float64(step) / float64(max(1, s.Warmup))
	}
	return math.Max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
}

// LR is the learning rate of the optimizer step with 0-based index step for base rate
// base: LambdaLR's base_lr * lambda(step), multiplied in that order.
func (s LinearWarmup) LR(base float64, step int) float64 {
	return base * s.Factor(step)
}
