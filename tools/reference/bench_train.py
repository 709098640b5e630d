#!/usr/bin/python3
"""The PyTorch side of `make bench-train`: complete optimizer steps of the official training
recipe (Llama + PEFT LoRA, the official compute_loss, autograd, clipping, AdamW, the linear
warm-up schedule) on the very micro-batches `bear bench train --dump FILE` ran, in float32 on
the same checkpoint and thread count. Prints one JSON line with bear's field names (medians over
the timed steps, after the dump's warm-up steps).

What each step does, in the HF Trainer's order:

  * data: the dump's micro-batches become tensors (ids, attention mask, positions, labels) and
    the trie's allowed sets become the official boolean constrain masks (timed: bear's step
    cuts and pads its micro-batches too);
  * forward: tools/reference/llamaref.py's transcription of transformers' Llama (eager
    attention; Debian's torch 1.13 has no SDPA), PEFT's LoRA with its dropout on the LoRA
    branch's input;
  * loss: per norm group (one device of the official 8-GPU run), the official compute_loss
    transcription of tools/reference/lossref.py over the group's supervised positions, the
    group's micro-batches concatenated, as tools/reference/trainref.py replays bear's steps;
    the groups' losses are averaged, as DDP averages the devices' gradients;
  * backward (autograd), torch.nn.utils.clip_grad_norm_, torch.optim.AdamW (foreach=False, the
    CPU path), and tools/reference/optimref.py's linear schedule.

--logits labels computes the LM head only at the supervised positions (full vocabulary), the
fair engine-to-engine comparison. --logits all computes logits at every position as the official
code does (LlamaForCausalLM returns [B, T, V]; compute_loss slices the last L+1 of them, masks
with the [B, L, V] constrain mask and drops the unsupervised rows; train_lml.py shifts the whole
sequence); and since the official compute_loss passes `labels` to the model, transformers also
computes its own cross-entropy over every position, which the trainer discards (--no-hf-loss
leaves it out). That loss follows transformers' ForCausalLMLoss in the form that pads the labels
instead of copying the shifted logits (the cheaper of its versions).

Threads: torch.set_num_threads(T) and every BLAS/OpenMP pool pinned to T before torch loads.

  /usr/bin/python3 tools/reference/bench_train.py --dump FILE --model DIR --threads 1 --logits labels|all
  /usr/bin/python3 tools/reference/bench_train.py --table RESULTS.jsonl   # bear's and these lines, compared
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", help="micro-batches from `bear bench train --dump`")
    ap.add_argument("--model", help="the checkpoint bear ran (config.json, model.safetensors)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--logits", choices=("labels", "all"), default="labels",
                    help="labels: LM head at the supervised positions only; all: at every position, as the official code")
    ap.add_argument("--no-hf-loss", action="store_true", help="with --logits all: leave out transformers' discarded loss")
    ap.add_argument("--table", metavar="RESULTS", help="print a Markdown table of a file of result lines instead")
    a = ap.parse_args()
    if not a.table and not (a.dump and a.model):
        ap.error("--dump and --model are required (or --table RESULTS)")
    if a.threads < 1:
        ap.error(f"--threads {a.threads}: want at least 1")
    return a


def read_dump(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or lines[0].get("kind") != "header":
        raise SystemExit(f"{path}: not a `bear bench train --dump` file (no header line)")
    header, steps = lines[0], lines[1:]
    if header["lora"] is None:
        raise SystemExit(f"{path}: the benchmark trained the full model; this script replays LoRA runs")
    if len(steps) != header["warmup_steps"] + header["steps"]:
        raise SystemExit(f"{path}: {len(steps)} steps, the header promises {header['warmup_steps']} + {header['steps']}")
    return header, steps


def peft_lora(cfg, spec):
    """LoRA matrices initialised as PEFT does (A Kaiming-uniform with a = sqrt(5), B zero), in
    llamaref's `lora` layout, with PEFT's dropout on the branch's input."""
    H = cfg["hidden_size"]
    hd = cfg.get("head_dim") or H // cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    shapes = {"q_proj": ("self_attn", cfg["num_attention_heads"] * hd, H), "k_proj": ("self_attn", nkv * hd, H),
              "v_proj": ("self_attn", nkv * hd, H), "o_proj": ("self_attn", H, cfg["num_attention_heads"] * hd),
              "gate_proj": ("mlp", cfg["intermediate_size"], H), "up_proj": ("mlp", cfg["intermediate_size"], H),
              "down_proj": ("mlp", H, cfg["intermediate_size"])}
    torch.manual_seed(42)
    weights = {}
    for layer in range(cfg["num_hidden_layers"]):
        for m in sorted(spec["targets"]):
            block, out, inp = shapes[m]
            key = f"base_model.model.model.layers.{layer}.{block}.{m}"
            A = torch.empty(spec["r"], inp, dtype=torch.float32)
            torch.nn.init.kaiming_uniform_(A, a=math.sqrt(5))
            weights[key + ".lora_A.weight"] = A.requires_grad_(True)
            weights[key + ".lora_B.weight"] = torch.zeros(out, spec["r"], dtype=torch.float32, requires_grad=True)
    lora = {"targets": spec["targets"], "r": spec["r"], "alpha": spec["alpha"], "weights": weights, "dropout": None}
    if spec["dropout"] > 0:
        p = spec["dropout"]
        lora["dropout"] = lambda layer, module, x: torch.nn.functional.dropout(x, p, training=True)
    return lora


def micro_tensors(mb):
    """A micro-batch's inputs as tensors (trainref.micro_tensors without its layout checks,
    which run once before the timed steps)."""
    B, T = mb["b"], mb["t"]
    ids = torch.tensor(mb["ids"], dtype=torch.int64).view(B, T)
    mask = torch.tensor(mb["mask"], dtype=torch.int64).view(B, T)
    pos = torch.tensor(mb["pos"], dtype=torch.int64).view(B, T)
    return ids, mask, pos, torch.tensor(mb["index"], dtype=torch.int64), torch.tensor(mb["targets"], dtype=torch.int64)


def constrain_mask(mb, vocab):
    """The official [B, L, V] constrain mask: per row, the allowed tokens of each of its
    supervised positions, left-padded with True to the longest row's L (the official collator's
    pad_sequence(padding_value=1, padding_side="left"))."""
    B, T = mb["b"], mb["t"]
    counts = [0] * B
    for s in mb["index"]:
        counts[s // T] += 1
    L = max(counts)
    cm = torch.ones(B, L, vocab, dtype=torch.bool)
    p = 0
    for r, k in enumerate(counts):
        for j in range(L - k, L):
            cm[r, j] = False
            cm[r, j, mb["allowed"][p]] = True
            p += 1
    return cm


class Phases:
    """Wall time per phase of one step."""

    def __init__(self):
        self.t = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        self.last = time.perf_counter()

    def mark(self, phase):
        now = time.perf_counter()
        self.t[phase] += now - self.last
        self.last = now


def hf_causal_lm_loss(logits, labels):
    """transformers' ForCausalLMLoss, which LlamaForCausalLM computes whenever labels are passed
    (the official compute_loss passes them and discards outputs.loss)."""
    labels = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].contiguous()
    return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def official_rows(cfg, W, lora, mb, kind, hf_loss, ph):
    """One micro-batch the official way: logits at every position, then compute_loss's slicing,
    shift and dropping of the unsupervised rows. Returns rows, targets and constrain mask rows."""
    ids, mask, pos, index, targets = micro_tensors(mb)
    B, T = ids.shape
    labels = torch.full((B, T), -100, dtype=torch.int64)
    labels.view(-1)[index + 1] = targets
    cm = None if kind == "lml" else constrain_mask(mb, cfg["vocab_size"])
    ph.mark("data")
    logits = llamaref.forward(cfg, W, ids, mask, pos, lora)  # [B, T, V]
    if hf_loss:
        hf_causal_lm_loss(logits, labels)
    if cm is not None:  # train_msl.py / train_bear.py: only the last L+1 positions
        logits, labels = logits[:, -cm.shape[1] - 1:, :], labels[:, -cm.shape[1] - 1:]
    logits, labels = logits[..., :-1, :].contiguous(), labels[..., 1:].contiguous()
    rows, tg, rows_mask = lossref.drop_unsupervised(logits, labels, cm)
    assert torch.equal(tg, targets), "the official slicing lost or reordered a supervised position"
    return rows, tg, rows_mask


def official_group_loss(cfg, W, lora, group, loss, hf_loss, ph):
    rows, targets, masks = [], [], []
    for mb in group["micro"]:
        ph.mark("forward")  # what ran since the last mark was the previous micro-batch's forward
        r, t, m = official_rows(cfg, W, lora, mb, loss["kind"], hf_loss, ph)
        rows.append(r)
        targets.append(t)
        masks.append(m)
    rows, targets = torch.cat(rows), torch.cat(targets)
    if loss["kind"] == "lml":
        return lossref.lml_literal(rows, targets, loss["tau"])
    if loss["kind"] == "msl":
        return lossref.msl_literal(rows, targets, torch.cat(masks), loss["tau"])
    return lossref.bear_literal(rows, targets, torch.cat(masks), loss["tau"], loss["xi"], loss["lambda"], loss["k"])


def labels_group_loss(cfg, W, lora, group, loss, ph):
    """The LM head at the supervised positions only; trainref.group_loss builds the masks and
    calls the official loss transcription."""
    rows, targets, allowed = [], [], []
    for mb in group["micro"]:
        ph.mark("forward")  # what ran since the last mark was the previous micro-batch's forward
        ids, mask, pos, index, tg = micro_tensors(mb)
        ph.mark("data")
        rows.append(llamaref.forward(cfg, W, ids, mask, pos, lora, sel=(index // mb["t"], index % mb["t"])))
        targets.append(tg)
        allowed += mb["allowed"]
    return trainref.group_loss(loss["kind"], loss, torch.cat(rows), torch.cat(targets), allowed, cfg["vocab_size"])


def run_step(a, cfg, W, lora, params, opt, sched, header, step):
    t0, c0 = time.perf_counter(), time.process_time()
    ph = Phases()
    opt.zero_grad(set_to_none=True)
    groups, total = step["groups"], 0.0
    for group in groups:
        if a.logits == "labels":
            loss = labels_group_loss(cfg, W, lora, group, header["loss"], ph)
        else:
            loss = official_group_loss(cfg, W, lora, group, header["loss"], not a.no_hf_loss, ph)
        ph.mark("forward")
        (loss / len(groups)).backward()
        ph.mark("backward")
        total += float(loss) / len(groups)
    assert math.isfinite(total), f"step {step['step']}: loss {total}"
    torch.nn.utils.clip_grad_norm_(params, header["optim"]["max_grad_norm"])
    opt.step()
    sched.step()
    ph.mark("optimizer")
    wall = time.perf_counter() - t0
    return {"tokens": step["tokens"], "loss": total, "wall": wall, "cpu": time.process_time() - c0, **ph.t}


def summary(a, header, samples, rss_before):
    timed = samples[header["warmup_steps"]:]

    def med(f):
        return statistics.median(f(s) for s in timed)

    return {
        "engine": f"pytorch {torch.__version__}", "variant": "official" if a.logits == "all" else "labels",
        "hf_loss": a.logits == "all" and not a.no_hf_loss, "model": a.model, "dump": a.dump,
        "loss": header["loss"]["kind"], "batch": header["batch"], "norm_group": header["norm_group"],
        "micro_batch": header["micro_batch"], "threads": a.threads, "steps": len(timed), "warmup_steps": header["warmup_steps"],
        "tokens": med(lambda s: s["tokens"]), "tokens_per_s": med(lambda s: s["tokens"] / s["wall"]),
        "step_ms": med(lambda s: s["wall"] * 1e3), "ort_ms": None, "go_ms": None, "cpu_ms": med(lambda s: s["cpu"] * 1e3),
        "data_ms": med(lambda s: s["data"] * 1e3), "forward_ms": med(lambda s: s["forward"] * 1e3),
        "backward_ms": med(lambda s: s["backward"] * 1e3), "optimizer_ms": med(lambda s: s["optimizer"] * 1e3),
        "first_step_loss": samples[0]["loss"], "rss_after_prepare_mb": rss_before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def table(path):
    """One row per (threads, micro-batch, loss): the last bear, label-only and official-style
    lines of the results file, their medians and bear's speed-ups (wall time, and CPU time in
    brackets, which a busy machine disturbs less)."""
    last = {}
    for line in open(path):
        r = json.loads(line)
        engine = "bear" if r["engine"] == "bear" else r["variant"]
        last[(r["threads"], r["micro_batch"], r["loss"], engine)] = r
    print("| threads | micro-batch | loss | bear step ms (CPU) | Go share | PyTorch label-only ms (CPU) | official-style ms (CPU) "
          "| bear vs label-only | bear vs official | peak RSS MiB bear / label-only / official |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted({k[:3] for k in last}, key=lambda k: (k[0], -k[1], ["lml", "msl", "bear"].index(k[2]))):
        b, lab, off = (last.get(key + (e,)) for e in ("bear", "labels", "official"))
        if b is None:
            continue

        def ms(r):
            return f"{r['step_ms']:.0f} ({r['cpu_ms']:.0f})" if r else "—"

        def speedup(r):
            return f"{r['step_ms'] / b['step_ms']:.2f}× ({r['cpu_ms'] / b['cpu_ms']:.2f}×)" if r else "—"

        rss = " / ".join(f"{r['peak_rss_mb']:.0f}" if r else "—" for r in (b, lab, off))
        print(f"| {key[0]} | {key[1]} | {key[2]} | {ms(b)} | {100 * b['go_share']:.1f}% | {ms(lab)} | {ms(off)} "
              f"| {speedup(lab)} | {speedup(off)} | {rss} |")
    for key, b in sorted(last.items()):
        ref = last.get(key[:3] + ("bear",))
        if ref and abs(b["first_step_loss"] - ref["first_step_loss"]) > 1e-5 * max(1.0, abs(ref["first_step_loss"])):
            print(f"\nWARNING: {key}: first-step loss {b['first_step_loss']} differs from bear's {ref['first_step_loss']}: not the same work")
    for threads, micro in sorted({k[:2] for k in last}):
        msl, bear = last.get((threads, micro, "msl", "bear")), last.get((threads, micro, "bear", "bear"))
        if msl and bear:
            print(f"\n{threads} thread(s), micro-batch {micro}: BEAR / MSL step time {bear['step_ms'] / msl['step_ms']:.3f} "
                  f"(CPU {bear['cpu_ms'] / msl['cpu_ms']:.3f})")


def main():
    a = parse_args()
    if a.table:
        table(a.table)
        return
    # Debian's torch runs its GEMMs in OpenBLAS, whose own thread pool ignores
    # torch.set_num_threads: fix every pool before torch loads (as bench_step.py does).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    global torch, llamaref, lossref, optimref, trainref
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import llamaref
    import lossref
    import optimref
    import trainref
    torch.set_default_dtype(torch.float32)  # lossref sets float64 for its goldens when imported
    torch.set_num_threads(a.threads)
    header, steps = read_dump(a.dump)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = {k: v.to(torch.float32) for k, v in llamaref.read_safetensors(os.path.join(a.model, "model.safetensors")).items()}
    for step in steps:  # the official label layout, checked once, untimed
        for group in step["groups"]:
            for mb in group["micro"]:
                trainref.micro_tensors(mb)
    lora = peft_lora(cfg, header["lora"])
    params = list(lora["weights"].values())
    o = header["optim"]
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                            weight_decay=o["weight_decay"], foreach=False)
    sched = optimref.linear_schedule_with_warmup(opt, o["warmup"], o["total"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples = [run_step(a, cfg, W, lora, params, opt, sched, header, s) for s in steps]
    print(json.dumps(summary(a, header, samples, rss_before)))


if __name__ == "__main__":
    main()
