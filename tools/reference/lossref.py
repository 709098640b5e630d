#!/usr/bin/python3
"""Golden cases for package lossgrad from a PyTorch transcription of the official losses.

The official BEAR repository (arXiv 2601.22925; train_lml.py, train_msl.py, train_bear.py)
computes its losses inside `compute_loss` of a transformers Trainer. The functions below
re-express those computations over plain tensors, step by step and with the same reductions:

  * rows whose label is -100 (prompt and padding) are dropped before anything else, so
    they count neither in the means nor in BEAR's weight normalisation;
  * MSL/BEAR: logits outside the trie's allowed set are set to -inf, then divided by tau;
  * LML:  mean over rows of  -log(exp(z_t/tau)) + log(sum exp(z/tau))   (no max subtraction)
  * MSL:  mean over rows of  -z_t/tau + log(sum exp(z/tau))             (no max subtraction)
  * BEAR: p = softmax(z/tau); ce = -log p_t; beta = K-th largest p (detached), replaced by
          the smallest allowed p where it is 0 (fewer than K allowed);
          w = 1 + lambda * sigmoid((log p_t - log beta)/xi), detached;
          rows with more than one allowed token get w / (sum of their w + 1e-8);
          loss = sum(ce * w).
Gradients come from autograd in float64.

Where the literal (max-free) form overflows or underflows, the case is marked
"official_nonfinite" and the expected values come from the algebraically identical
log-softmax form; for every other case the script checks that both forms agree to 1e-12.

Diagnostics per kept row: logp = log p_t, logbeta = log beta (as above, in log space),
margin = logbeta - logp, in_top_k = (p_t >= beta), weight = the coefficient of -log p_t.

Usage: /usr/bin/python3 tools/reference/lossref.py [--seed 42] [--out testdata/lossgrad/goldens.json.gz]
"""

import argparse
import gzip
import json
import math

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def drop_unsupervised(logits, labels, allowed):
    """Flatten (B, T, V) to rows and keep the rows whose label is not -100."""
    v = logits.shape[-1]
    keep = labels.reshape(-1) != -100
    rows = logits.reshape(-1, v)[keep]
    targets = labels.reshape(-1)[keep]
    mask = allowed.reshape(-1, v)[keep] if allowed is not None else None
    return rows, targets, mask


def lml_literal(rows, targets, tau):
    pos = torch.exp(rows.gather(1, targets[:, None])[:, 0] / tau)
    total = torch.exp(rows / tau).sum(dim=-1)
    return (-torch.log(pos) + torch.log(total)).mean()


def msl_literal(rows, targets, mask, tau):
    z = rows.masked_fill(~mask, -math.inf)
    pos = z.gather(1, targets[:, None])[:, 0]
    total = torch.exp(z / tau).sum(dim=-1)
    return (-pos / tau + torch.log(total)).mean()


def bear_weights(logp_t, log_quantile, mask, xi, lam):
    """Detached BEAR weights, normalised over rows with more than one allowed token."""
    w = (torch.sigmoid((logp_t - log_quantile) / xi) * lam + 1).detach()
    multi = mask.sum(dim=-1) > 1
    w = w.clone()
    w[multi] = w[multi] / (w[multi].sum() + 1e-8)
    return w


def bear_literal(rows, targets, mask, tau, xi, lam, k):
    z = rows.masked_fill(~mask, -math.inf)
    p = torch.softmax(z / tau, dim=-1)
    p_t = p.gather(1, targets[:, None])[:, 0]
    ce = -p_t.log()
    q = p.topk(k, dim=-1).values[:, -1].detach()
    smallest = p.masked_fill(~mask, math.inf).min(dim=-1).values
    q = torch.where(q == 0, smallest, q).detach()
    w = bear_weights(p_t.log(), q.log(), mask, xi, lam)
    return (ce * w).sum()


def log_diagnostics(rows, targets, mask, tau, k):
    """log p_t, log beta (K-th largest allowed log-prob, or the smallest allowed one when
    fewer than K are allowed), all in log space."""
    z = rows if mask is None else rows.masked_fill(~mask, -math.inf)
    logp = torch.log_softmax(z / tau, dim=-1)
    logp_t = logp.gather(1, targets[:, None])[:, 0]
    kk = min(k, logp.shape[-1])
    kth = logp.topk(kk, dim=-1).values[:, -1]
    smallest = logp.masked_fill(torch.isinf(logp), math.inf).min(dim=-1).values
    logbeta = torch.where(torch.isinf(kth) | torch.tensor(kk < k), smallest, kth)
    return logp, logp_t, logbeta


def stable_loss(kind, rows, targets, mask, tau, xi, lam, k):
    n = rows.shape[0]
    if mask is None:
        mask = torch.ones_like(rows, dtype=torch.bool)
    logp, logp_t, logbeta = log_diagnostics(rows, targets, mask, tau, k)
    nll = -logp_t
    if kind in ("lml", "msl"):
        return nll.mean(), torch.full((n,), 1.0 / n)
    w = bear_weights(logp_t.detach(), logbeta.detach(), mask, xi, lam)
    return (nll * w).sum(), w


def evaluate(kind, logits, labels, allowed, tau, xi, lam, k):
    """Returns loss, dL/dlogits (B, T, V), per-row diagnostics, official_nonfinite."""
    out = {}
    for form in ("literal", "stable"):
        leaf = logits.clone().requires_grad_(True)
        rows, targets, mask = drop_unsupervised(leaf, labels, allowed)
        if form == "literal":
            if kind == "lml":
                loss = lml_literal(rows, targets, tau)
            elif kind == "msl":
                loss = msl_literal(rows, targets, mask, tau)
            else:
                loss = bear_literal(rows, targets, mask, tau, xi, lam, k)
            weights = None
        else:
            loss, weights = stable_loss(kind, rows, targets, mask, tau, xi, lam, k)
        loss.backward()
        out[form] = (loss.detach(), leaf.grad, weights)
    lit, stab = out["literal"], out["stable"]
    nonfinite = not (torch.isfinite(lit[0]) and torch.isfinite(lit[1]).all())
    if not nonfinite:
        rel = abs(lit[0] - stab[0]) / max(abs(stab[0]), 1.0)
        gscale = stab[1].abs().max().clamp(min=1e-300)
        grel = (lit[1] - stab[1]).abs().max() / gscale
        assert rel < 1e-12 and grel < 1e-12, (kind, float(rel), float(grel))
    loss, grad = (stab[0], stab[1]) if nonfinite else (lit[0], lit[1])
    rows, targets, mask = drop_unsupervised(logits, labels, allowed)
    if mask is None:
        mask = torch.ones_like(rows, dtype=torch.bool)
    _, logp_t, logbeta = log_diagnostics(rows, targets, mask, tau, k)
    diag = []
    for i in range(rows.shape[0]):
        diag.append({
            "logp": float(logp_t[i]),
            "logbeta": float(logbeta[i]),
            "margin": float(logbeta[i] - logp_t[i]),
            "in_top_k": bool(logp_t[i] >= logbeta[i]),
            "weight": float(stab[2][i]),
        })
    return float(loss), grad, diag, nonfinite


def sizes_for(rng, style, count, k):
    if style == "small":
        return rng.integers(1, 21, count)
    if style == "loguniform":
        return np.exp(rng.uniform(0, math.log(3000), count)).astype(int).clip(1, 3000)
    if style == "max":
        return np.full(count, 3000)
    if style == "fewer_than_k":
        return rng.integers(1, k, count) if k > 1 else np.ones(count, int)
    if style == "single":
        return np.ones(count, int)
    if style == "trie":
        # first position wide, the rest narrow, as in a title trie
        s = rng.integers(1, 4, count)
        s[0] = rng.integers(500, 3001)
        return s
    raise ValueError(style)


def make_case(rng, name, kind, tau=1.0, xi=2.75, lam=0.25, k=10, seqs=2, steps=4, pad=1,
              style="loguniform", vocab=None, scale=3.0, offset=0.0, decimals=4):
    """One micro-batch: `seqs` sequences of `steps` positions whose first `pad` are
    left padding / prompt (label -100)."""
    nrows = seqs * steps
    if kind == "lml":
        v = vocab
        sizes = np.full(nrows, v)
    else:
        sizes = sizes_for(rng, style, nrows, k)
        v = int(max(sizes.max() + rng.integers(1, 50), k))
    logits = np.round(rng.normal(0.0, scale, (seqs, steps, v)) + offset, decimals)
    labels = np.full((seqs, steps), -100, dtype=np.int64)
    allowed = np.ones((seqs, steps, v), dtype=bool)  # padding rows: all ones, as the collator
    positions = []
    for b in range(seqs):
        for t in range(steps):
            if t < pad:
                continue
            n = int(sizes[b * steps + t])
            if kind == "lml":
                idx = np.arange(v)
            else:
                idx = np.sort(rng.choice(v, size=n, replace=False))
                allowed[b, t] = False
                allowed[b, t, idx] = True
            target = int(rng.integers(0, n))
            labels[b, t] = idx[target]
            positions.append((b, t, idx, target))
    lt = torch.tensor(logits)
    lb = torch.tensor(labels)
    al = None if kind == "lml" else torch.tensor(allowed)
    loss, grad, diag, nonfinite = evaluate(kind, lt, lb, al, tau, xi, lam, k)
    inp = {"loss": kind, "tau": tau, "k": k, "positions": []}
    if kind == "bear":
        inp["xi"], inp["lambda"] = xi, lam
    grads = []
    for (b, t, idx, target) in positions:
        inp["positions"].append({"logits": [float(x) for x in logits[b, t, idx]], "target": target})
        grads.append([float(x) for x in grad[b, t, idx]])
    # gradients outside the allowed set must be exactly zero (dropped rows included)
    for (b, t, idx, _) in positions:
        rest = np.ones(v, dtype=bool)
        rest[idx] = False
        assert float(grad[b, t][torch.tensor(rest)].abs().sum()) == 0.0
    return {
        "name": name,
        "official_nonfinite": nonfinite,
        "unsupervised_rows": int(seqs * pad),
        "input": inp,
        "want": {"loss": loss, "grads": grads, "positions": diag},
    }


def all_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []

    def add(name, kind, **kw):
        cases.append(make_case(rng, name, kind, **kw))

    # LML: whole vocabulary
    add("lml/small_vocab", "lml", vocab=40, seqs=3, steps=3)
    add("lml/vocab_1000", "lml", vocab=1000)
    add("lml/vocab_5000_tau0.5", "lml", vocab=5000, tau=0.5, seqs=1, steps=3)
    add("lml/tau2", "lml", vocab=300, tau=2.0, seqs=3)
    add("lml/fewer_than_k", "lml", vocab=6, k=10, seqs=3)
    add("lml/ties", "lml", vocab=50, scale=1.0, decimals=0, seqs=3)
    add("lml/k1", "lml", vocab=100, k=1)
    add("lml/large_logits", "lml", vocab=500, scale=100.0)
    add("lml/large_logits_tau0.5_overflows_official", "lml", vocab=500, scale=150.0, tau=0.5)
    add("lml/huge_offset_overflows_official", "lml", vocab=200, offset=1e4, seqs=1)
    add("lml/huge_negative", "lml", vocab=200, offset=-2e3, seqs=1, tau=0.7)
    add("lml/no_padding_many_positions", "lml", vocab=64, seqs=4, steps=5, pad=0)
    add("lml/single_token_vocab", "lml", vocab=1, seqs=2)

    for kind in ("msl", "bear"):
        add(f"{kind}/small", kind, style="small")
        add(f"{kind}/loguniform", kind, style="loguniform", seqs=3)
        add(f"{kind}/max_3000", kind, style="max", seqs=1, steps=3)
        add(f"{kind}/trie_like", kind, style="trie", seqs=2, steps=6)
        add(f"{kind}/fewer_than_k", kind, style="fewer_than_k", seqs=3)
        add(f"{kind}/all_single", kind, style="single")
        add(f"{kind}/ties", kind, style="small", scale=1.0, decimals=0, seqs=3)
        add(f"{kind}/ties_wide", kind, style="loguniform", scale=0.6, decimals=0)
        add(f"{kind}/tau0.5", kind, style="loguniform", tau=0.5)
        add(f"{kind}/tau3", kind, style="small", tau=3.0)
        add(f"{kind}/large_logits", kind, style="loguniform", scale=100.0)
        add(f"{kind}/large_logits_tau0.5", kind, style="loguniform", scale=200.0, tau=0.5)
        add(f"{kind}/huge_offset_overflows_official", kind, style="small", offset=1e4, seqs=1)
        add(f"{kind}/huge_negative", kind, style="small", offset=-3e3, seqs=1)
        add(f"{kind}/k1", kind, style="small", k=1)
        add(f"{kind}/k5", kind, style="loguniform", k=5)
        add(f"{kind}/k20", kind, style="loguniform", k=20, seqs=1)
        add(f"{kind}/no_padding", kind, style="small", pad=0, seqs=3, steps=5)
        add(f"{kind}/one_position", kind, style="loguniform", seqs=1, steps=2)
    for i, (xi, lam) in enumerate([(1.0, 1.0), (0.5, 2.0), (5.0, 0.1), (2.75, 0.0)]):
        add(f"bear/xi{xi}_lambda{lam}", "bear", xi=xi, lam=lam, style="loguniform")
    add("bear/mixed_single_and_multi", "bear", style="trie", seqs=3, steps=5)
    add("bear/sharp_distribution", "bear", style="small", scale=12.0)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="testdata/lossgrad/goldens.json.gz")
    args = ap.parse_args()
    cases = all_cases(args.seed)
    doc = {
        "generator": "tools/reference/lossref.py",
        "seed": args.seed,
        "torch": torch.__version__,
        "cases": cases,
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with open(args.out, "wb") as f:
        with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(data)
    print(f"{args.out}: {len(cases)} cases, {len(data)} bytes of JSON")


if __name__ == "__main__":
    main()
