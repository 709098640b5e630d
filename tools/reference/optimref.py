#!/usr/bin/python3
"""Golden optimizer trajectories for package optim, from torch itself (float32, CPU).

What the HF Trainer does once per optimizer step (transformers' Trainer._inner_training_loop,
`adamw_torch`, `lr_scheduler_type="linear"`, `max_grad_norm`), replayed here with the real torch
objects rather than a transcription:

    total_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()            # torch.optim.AdamW, foreach=False: the single-tensor CPU path
    scheduler.step()            # transformers' get_linear_schedule_with_warmup (a LambdaLR)

The lambda below is the one of transformers/optimization.py
(_get_linear_schedule_with_warmup_lr_lambda); transformers itself is not installed here, and
the LambdaLR that wraps it is torch's own.

Parameters: a few float32 tensors of different sizes with random values; gradients: a fresh
random set per step, scaled so that clipping is active on some steps and not on others (one
step gives one tensor an all-zero gradient). Two cases share the parameters and gradients:
weight decay 0 (the official run's setting) and 0.01. For every step the file records the
learning rate the step ran with, clip_grad_norm_'s total norm and scaling factor, and the parameters and both
AdamW moments after the step.

Floats are written in numpy's shortest float32 repr, so parsing them as float32 gives back
the exact torch values.

Usage: /usr/bin/python3 tools/reference/optimref.py [--seed 7] [--out testdata/optim/golden.json.gz]
"""

import argparse
import gzip
import json

import numpy as np
import torch

SHAPES = {"scalar": [1], "vec5": [5], "mat8x8": [8, 8], "mat16x16": [16, 16], "lora8x64": [8, 64]}
# Per-step gradient scale: the total norm is about scale * sqrt(838) ~ 29 * scale, so steps
# 0, 2, 3, 5 clip (max_norm 1) and steps 1, 4, 6, 7 do not.
STEP_SCALES = [0.5, 0.002, 0.04, 0.3, 0.001, 0.05, 0.004, 0.02]
ZERO_GRAD_STEP, ZERO_GRAD_PARAM = 4, "mat8x8"
LR, WARMUP, TOTAL, MAX_NORM = 1e-3, 3, 8, 1.0
BETAS, EPS = (0.9, 0.999), 1e-8


def linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps):
    """transformers.get_linear_schedule_with_warmup, same lambda, torch's LambdaLR."""

    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def f32_list(t):
    """Flat list of Python floats whose repr is the shortest float32 repr of each value."""
    return [float(str(v)) for v in t.detach().reshape(-1).numpy().astype(np.float32)]


def make_inputs(gen):
    init = {n: torch.randn(s, generator=gen, dtype=torch.float32) for n, s in SHAPES.items()}
    grads = []
    for step, scale in enumerate(STEP_SCALES):
        g = {n: torch.randn(s, generator=gen, dtype=torch.float32) * scale for n, s in SHAPES.items()}
        if step == ZERO_GRAD_STEP:
            g[ZERO_GRAD_PARAM].zero_()
        grads.append(g)
    return init, grads


def run_case(init, grads, weight_decay):
    params = {n: torch.nn.Parameter(v.clone()) for n, v in init.items()}
    opt = torch.optim.AdamW(params.values(), lr=LR, betas=BETAS, eps=EPS, weight_decay=weight_decay, foreach=False)
    sched = linear_schedule_with_warmup(opt, WARMUP, TOTAL)
    steps = []
    for g in grads:
        for n, p in params.items():
            p.grad = g[n].clone()
        lr = opt.param_groups[0]["lr"]  # what this optimizer step runs with
        total_norm = torch.nn.utils.clip_grad_norm_(params.values(), MAX_NORM)
        # The factor clip_grad_norm_ multiplied the gradients by: its own expression on the
        # total norm it returned (so a test can feed AdamW torch's clipped gradients exactly).
        clip_coef = torch.clamp(MAX_NORM / (total_norm + 1e-6), max=1.0)
        opt.step()
        sched.step()
        state = [opt.state[p] for p in params.values()]
        steps.append({
            "lr": lr,
            "total_norm": float(str(np.float32(total_norm.item()))),
            "clip_coef": float(str(np.float32(clip_coef.item()))),
            "params": [f32_list(p) for p in params.values()],
            "exp_avg": [f32_list(s["exp_avg"]) for s in state],
            "exp_avg_sq": [f32_list(s["exp_avg_sq"]) for s in state],
        })
    return {"weight_decay": weight_decay, "steps": steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="testdata/optim/golden.json.gz")
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    init, grads = make_inputs(gen)
    doc = {
        "generator": "tools/reference/optimref.py --seed %d" % args.seed,
        "torch": torch.__version__,
        "lr": LR, "warmup": WARMUP, "total": TOTAL, "max_norm": MAX_NORM,
        "betas": list(BETAS), "eps": EPS,
        "params": [{"name": n, "shape": s, "value": f32_list(init[n])} for n, s in SHAPES.items()],
        "grads": [[f32_list(g[n]) for n in SHAPES] for g in grads],
        "cases": [run_case(init, grads, wd) for wd in (0.0, 0.01)],
    }
    data = json.dumps(doc, separators=(",", ":")).encode()
    with open(args.out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as z:
        z.write(data)
    clipped = sum(s["total_norm"] > MAX_NORM for s in doc["cases"][0]["steps"])
    print("wrote %s: %d steps, %d clipped, %d bytes of JSON" % (args.out, len(grads), clipped, len(data)))


if __name__ == "__main__":
    main()
