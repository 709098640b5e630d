// Package optim is the optimizer side of training: gradient clipping by global norm, AdamW and
// the linear warm-up schedule, each as PyTorch and the Hugging Face Trainer compute them, over
// float32 master copies of the trainable tensors (Param: the LoRA matrices). It is pure Go over
// slices and imports nothing of the project.
//
// Once the backward pass has written every Param's Grad in place, one optimizer step is what
// transformers' Trainer does, in its order:
//
//	norm := optim.ClipGradNorm(params, 1.0) // max_grad_norm; logged as grad_norm
//	lr := sched.LR(1e-4, step)              // the rate this step runs with; logged as learning_rate
//	opt.Step(lr)                            // optimizer.step()
//	step++                                  // lr_scheduler.step()
//
// ClipGradNorm is torch.nn.utils.clip_grad_norm_: the total norm is the 2-norm of the
// per-tensor 2-norms, every gradient is multiplied by min(1, max_norm/(total + 1e-6)) computed
// in torch's float32 scalar arithmetic, and the norm before clipping is returned. Nothing is
// checked (torch's error_if_nonfinite False): a NaN norm makes every gradient NaN, an infinite
// one makes the factor 0. The norms are summed in float64 where torch reduces in float32, so
// the returned norm, and through it the factor, can differ from torch's in the last float32 bit.
//
// LinearWarmup is get_linear_schedule_with_warmup under torch's LambdaLR: the optimizer step of
// 0-based index k runs with base * lambda(k), lambda(k) = k/max(1, Warmup) below Warmup, else
// max(0, (Total-k)/max(1, Total-Warmup)). With a warm-up the first step thus runs at rate 0
// (moments updated, values not). The rate equals torch's to the bit.
//
// AdamW is torch.optim.AdamW's single-tensor path (the CPU default of torch 1.13), for step t
// counted from 1: value *= 1 - lr*WeightDecay (decoupled, first); m = Beta1*m + (1-Beta1)*g;
// v = Beta2*v + (1-Beta2)*g*g; value += -lr/(1-Beta1^t) * m / (sqrt(v)/sqrt(1-Beta2^t) + Eps).
// Moments are float32 and every operation rounds as torch's CPU kernels do (fused
// multiply-adds included), so values and moments equal torch 1.13's bit for bit; torch's
// foreach and fused paths, and other releases, may round differently in the last bit.
// DefaultAdamW is the Trainer's adamw_torch with its defaults (betas 0.9 and 0.999, eps 1e-8,
// weight decay 0). NewAdamW rejects what torch's constructor rejects and parameter lists that
// are empty, have duplicate or empty names, or gradients of the wrong length. One AdamW must
// not be used from two goroutines at once.
//
// State and SetState save and restore the step count and both moments by parameter name
// (SetState checks every name and length and changes nothing on error): a run resumed from
// them, with the same schedule step, continues bit for bit as the uninterrupted one would.
package optim
