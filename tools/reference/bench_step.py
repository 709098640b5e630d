#!/usr/bin/python3
"""The PyTorch side of `make bench-step`: one LoRA training step of the reference Llama
(tools/reference/llamaref.py, float32, PEFT's LoRA parameterisation, autograd) on the same
checkpoint, batch and thread count as `bear bench step`, with logits only at the label positions,
so that the comparison is of engines, not of shortcuts. Prints JSON like bear's.

  /usr/bin/python3 tools/reference/bench_step.py --model DIR --threads 1 [--batch 8 --seq 256 --positions 20]
"""
import argparse
import json
import os
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--positions", type=int, default=20)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    # Debian's torch runs its GEMMs in OpenBLAS, whose own thread pool ignores
    # torch.set_num_threads: fix every pool before torch loads, or "1 thread" uses all cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    global np, torch, llamaref
    import numpy as np
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import llamaref
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = {k: v.to(torch.float32) for k, v in llamaref.read_safetensors(os.path.join(a.model, "model.safetensors")).items()}
    rng = np.random.default_rng(1)
    H = cfg["hidden_size"]
    hd = cfg.get("head_dim") or H // cfg["num_attention_heads"]
    dims = {"self_attn.q_proj": cfg["num_attention_heads"] * hd, "self_attn.v_proj": cfg["num_key_value_heads"] * hd}
    weights = {}
    for l in range(cfg["num_hidden_layers"]):
        for path, out in dims.items():
            key = f"base_model.model.model.layers.{l}.{path}"
            weights[key + ".lora_A.weight"] = torch.tensor(rng.standard_normal((a.rank, H)) * 0.01, dtype=torch.float32, requires_grad=True)
            weights[key + ".lora_B.weight"] = torch.tensor(rng.standard_normal((out, a.rank)) * 0.01, dtype=torch.float32, requires_grad=True)
    lora = {"targets": ["q_proj", "v_proj"], "r": a.rank, "alpha": a.alpha, "weights": weights}
    ids = torch.tensor(rng.integers(0, cfg["vocab_size"], (a.batch, a.seq)), dtype=torch.int64)
    mask = torch.ones_like(ids)
    pos = torch.arange(a.seq).expand(a.batch, a.seq)
    rows = torch.arange(a.batch).repeat_interleave(a.positions)
    toks = torch.arange(a.seq - a.positions, a.seq).repeat(a.batch)
    cot = torch.tensor(rng.standard_normal((a.batch * a.positions, cfg["vocab_size"])) * 1e-3, dtype=torch.float32)
    fwd = bwd = fwd_cpu = bwd_cpu = 0.0
    for it in range(-1, a.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        logits = llamaref.forward(cfg, W, ids, mask, pos, lora, sel=(rows, toks))
        t1, c1 = time.perf_counter(), time.process_time()
        for w in weights.values():
            w.grad = None
        (logits * cot).sum().backward()
        t2, c2 = time.perf_counter(), time.process_time()
        if it >= 0:
            fwd += t1 - t0
            bwd += t2 - t1
            fwd_cpu += c1 - c0
            bwd_cpu += c2 - c1
    print(json.dumps({
        "engine": f"pytorch {torch.__version__}", "model": a.model, "batch": a.batch, "seq": a.seq,
        "label_positions": a.positions, "threads": a.threads,
        "forward_seconds": fwd / a.iters, "backward_seconds": bwd / a.iters,
        "forward_cpu_seconds": fwd_cpu / a.iters, "backward_cpu_seconds": bwd_cpu / a.iters,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }, indent=2))


if __name__ == "__main__":
    main()
