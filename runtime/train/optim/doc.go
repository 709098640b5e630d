// Package optim is the optimizer side of training: gradient clipping by global norm,
// AdamW, and the linear warm-up schedule, each as PyTorch and the Hugging Face Trainer
// compute them, over float32 master copies of the trainable tensors (the LoRA matrices).
// It is pure Go over slices, imports nothing of the project, and uses gonum for the
// vector kernels that have a BLAS form.
//
// # One optimizer step
//
// After the backward pass has written the gradients into each Param's Grad slice, the
// trainer does what transformers' Trainer._inner_training_loop (src/transformers/trainer.py)
// does once per optimizer step, in the same order:
//
//	norm := optim.ClipGradNorm(params, 1.0) // args.max_grad_norm; logged as grad_norm
//	lr := sched.LR(1e-4, step)              // the rate this step runs with; logged as learning_rate
//	opt.Step(lr)                            // optimizer.step()
//	step++                                  // lr_scheduler.step(), then model.zero_grad()
//
// The Trainer clips through accelerate's Accelerator.clip_grad_norm_, which (single device
// or DDP, no fp16 scaler) is torch.nn.utils.clip_grad_norm_, and reads the learning rate it
// logs between optimizer.step() and lr_scheduler.step(), i.e. the rate the step used. It
// skips lr_scheduler.step() only when accelerate reports a skipped optimizer step (fp16
// overflow), which cannot happen here.
//
// # Schedule (LinearWarmup)
//
// get_linear_schedule_with_warmup (src/transformers/optimization.py) wraps this lambda
// in a torch LambdaLR:
//
//	lambda(s) = s / max(1, warmup)                             if s < warmup
//	          = max(0, (total - s) / max(1, total - warmup))   otherwise
//
// LambdaLR sets lr = base_lr * lambda(last_epoch). Its constructor (torch/optim/
// lr_scheduler.py, _LRScheduler.__init__ -> _initial_step -> step()) already steps once,
// from last_epoch -1 to 0, so the optimizer step with 0-based index k runs with
// lambda(k): with warm-up the first optimizer step runs with factor 0 (the moments are
// updated, the values are not), the step at index warmup is the first at the full rate,
// and the last step of the run (index total-1) runs with 1/(total-warmup). Factor(k) is
// lambda(k) and LR(base, k) is base*lambda(k), the same float64 operations, so the rate
// equals torch's to the bit (checked against the goldens). The official runs use warmup 20
// and total = the Trainer's max_steps.
//
// # Clipping (ClipGradNorm)
//
// torch.nn.utils.clip_grad_norm_ (torch/nn/utils/clip_grad.py, torch 1.13) computes the
// total norm as the 2-norm of the per-tensor 2-norms, clip_coef = max_norm / (total +
// 1e-6), clamps it to at most 1, and multiplies every gradient by the clamped factor
// unconditionally: the source says the multiplication by 1 is redundant but avoids a
// host-device synchronisation. ClipGradNorm multiplies unconditionally too, which also
// keeps torch's behaviour on non-finite norms (error_if_nonfinite is False by default and
// the Trainer does not set it): a NaN norm makes every gradient NaN, an infinite one
// makes the factor 0, and 0 times an infinite gradient is NaN. Because gonum's Scal writes
// zeros when the factor is 0 (the BLAS convention), a zero factor takes a plain loop.
//
// The factor is computed with torch's float32 scalar arithmetic: the total norm is a
// float32 tensor, `+ 1e-6` is a float32 addition, and `max_norm / tensor` is
// Tensor.__rdiv__ (torch/_tensor.py), reciprocal() * max_norm, two float32 roundings.
// The norms themselves are accumulated in float64 (gonum's blas32.DDot, then floats.Norm)
// where torch 1.13's CPU kernel reduces in float32. Measured against float64 on this
// machine, torch's per-tensor norm is off by up to 1e-7 relative at 4 096 values, 1e-6 at
// 100 000 and 1.5e-5 at 1 048 576; this package is exact to about 1e-16. The returned
// norm can therefore differ from torch's in the last float32 bits, and where the two round
// to neighbouring float32 values the factor differs by one float32 unit (2 of the 8 golden
// steps).
//
// # AdamW
//
// torch.optim.AdamW in its single-tensor form (torch/optim/adamw.py,
// _single_tensor_adamw; torch 1.13 picks it whenever foreach is not requested, and it is
// the CPU path), per parameter and step t (counted from 1):
//
//	param  *= 1 - lr*weight_decay                        decoupled decay, first
//	m       = beta1*m + (1-beta1)*g                      exp_avg.mul_(beta1).add_(g, alpha=1-beta1)
//	v       = beta2*v + (1-beta2)*g*g                    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1-beta2)
//	bc1     = 1 - beta1^t,  bc2 = 1 - beta2^t            Python floats
//	denom   = sqrt(v)/sqrt(bc2) + eps                    (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//	param  += (-lr/bc1) * m / denom                      param.addcdiv_(exp_avg, denom, value=-step_size)
//
// The scalars are float64 (Python floats) and enter the float32 kernels rounded once to
// float32; every tensor operation rounds to float32. Two of them are fused on the CPU: the
// AVX2 kernels of add_ with alpha and of addcmul_ use a fused multiply-add, so the moments
// are float32(beta1*m) followed by one FMA. Measured on 1M random values with Debian's
// torch: emulating the FMA reproduces torch's moments exactly, rounding the product
// separately (what gonum's Saxpy does) agrees on only 81% of first moments and 98% of
// second moments; and `sqrt(v) / bias_correction2_sqrt` is a true float32 division (100%),
// not a multiplication by the reciprocal (85%). This package reproduces that arithmetic:
// fma32 is a correctly rounded float32 FMA in portable Go (exact float64 product, and a
// round-to-odd correction in the rare sums that land on a float32 tie), the other
// operations carry explicit float32 conversions so that the Go compiler fuses nothing
// torch does not. The result equals torch 1.13 bit for bit on every value and moment of
// the goldens. The moments are float32, like torch's state for float32 parameters.
//
// Differences from torch that do not change any value: the step count is one int for the
// optimizer instead of a float32 tensor per parameter (the Trainer steps all parameters
// together; torch's float32 count would stop at 2^24 steps); a weight-decay factor of
// exactly 1 is skipped; Step shares the element-wise update between GOMAXPROCS goroutines
// (one AdamW must not be used from two goroutines at once). torch's foreach and fused
// paths, and other torch releases, compute the same formulas but may round differently in
// the last bit; newer releases choose foreach by default when every parameter is on CUDA
// (torch/optim/optimizer.py, _default_to_fused_or_foreach), so a GPU run of the official
// code most likely used it.
//
// DefaultAdamW is the Trainer's `adamw_torch` with TrainingArguments' defaults: betas
// (0.9, 0.999), eps 1e-8, weight decay 0 (the official BEAR setting). The Trainer applies
// a non-zero weight decay only to parameters outside LayerNorm modules whose names do not
// contain "bias" (Trainer.get_decay_parameter_names); LoRA matrices are all decayed under
// that rule, and so is every Param here.
//
// # Checkpoints
//
// State returns the step count and both moments of every parameter by name (a copy);
// SetState restores them after checking that every parameter is named exactly once with
// moments of its length, and leaves the optimizer unchanged on error. A run resumed from
// the saved values, State and schedule step continues bit for bit as the uninterrupted run
// (TestAdamWResume).
//
// # Verification
//
// tools/reference/optimref.py runs torch's own clip_grad_norm_, AdamW (foreach=False) and
// LambdaLR with the transformers lambda, float32 on the CPU, over random parameters and
// 8 steps of random gradients (4 clipped), warm-up 3 of 8 steps, lr 1e-3, weight decay 0
// and 0.01, and records the rate, total norm, clip factor, values and moments of every
// step in testdata/optim/golden.json.gz (make goldens-optim). The tests check: the rate to
// the bit; the total norm to 1e-6 relative (measured 1.0e-7) and the clip factor to the
// bit given torch's norm; AdamW fed torch's clipped gradients to the bit; and the whole
// pipeline (ClipGradNorm, LinearWarmup, AdamW) to 1e-6 relative (golden_test.go explains
// the tolerance: only the clip factor's last bit can differ). fma32 is checked against
// math/big on 200 000 random and constructed tie cases.
package optim
