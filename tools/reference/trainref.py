#!/usr/bin/python3
"""PyTorch reference of bear's training steps (`bear train`), for runtime/train's golden file.

The case file (testdata/train/case.json.gz, written by `go test ./runtime/train -run Reference
-update`) holds the inputs of a few optimizer steps exactly as bear's stepper runs them: per step,
its norm groups and their micro-batches (token ids, attention mask, positions, the logit slot and
target of every supervised position, the trie's allowed tokens), and per configuration the loss,
the LoRA dropout probability and the keep mask of every LoRA module for every micro-batch. This
script replays them in float64 with the official pieces:

  * the forward pass is tools/reference/llamaref.py's transcription of transformers' Llama with
    PEFT LoRA (its `dropout` hook applies the case's masks: x * keep / (1 - p) on the LoRA
    branch's input, as PEFT's nn.Dropout does in training mode);
  * each norm group's loss is the official compute_loss transcription of
    tools/reference/lossref.py (lml_literal, msl_literal, bear_literal) over the group's
    supervised positions, the micro-batches' rows concatenated: one group is one device of the
    official 8-GPU DDP run, which normalises over its own sequences; the step's loss is the mean
    over the groups, so its gradient is DDP's average of the devices' gradients;
  * autograd gives the accumulated gradient; then, in the HF Trainer's order,
    torch.nn.utils.clip_grad_norm_(max_norm), torch.optim.AdamW (foreach=False) and the
    linear warm-up LambdaLR of tools/reference/optimref.py.

One deliberate difference from the official scripts: their LML softmax runs over 128 257 logits
(the added <pad> row of the resized embedding), bear's over the model's 128 256; the reference
uses the model's vocabulary, as bear does (the <pad> logit would only add a term to every
normaliser).

The PEFT check: for every configuration, the adapter bear wrote after the last step
(testdata/train/adapters/NAME, committed by the -update run) is read here by PEFT's key names
with a plain safetensors parser, applied to the float64 model without dropout, and its logits at
the case's check micro-batch are written (at a fixed sample of vocabulary columns plus the
targets) for the Go test to compare with bear's forward pass of that adapter.

Usage (see `make goldens-train`):
  /usr/bin/python3 tools/reference/trainref.py --bear bin/bear --case testdata/train/case.json.gz \
      --work .cache/goldens/train --out testdata/train/golden.json.gz
"""
import argparse
import base64
import gzip
import hashlib
import json
import os
import subprocess

import numpy as np
import torch

import llamaref
import lossref
import optimref

DT = torch.float64
COLUMN_STRIDE = 997  # PEFT check: every 997th vocabulary column, plus the targets
EOS = 128001


def load_checkpoint(case, bear, work):
    """Rebuilds the case's checkpoint with `bear init --config` and checks its bytes."""
    os.makedirs(work, exist_ok=True)
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(case["model"]["config"], f)
    init, ck = case["model"]["init"], os.path.join(work, "model")
    subprocess.run([bear, "init", "--config", cfg_path, "--out", ck, "--seed", str(init["seed"]), "--std", str(init["std"]),
                    "--norm-jitter", str(init["norm_jitter"]), "--dtype", init["dtype"]], check=True)
    path = os.path.join(ck, "model.safetensors")
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if sha != case["model"]["sha256"]:
        raise SystemExit(f"{path}: sha256 {sha}, the case was made with {case['model']['sha256']}")
    return json.load(open(os.path.join(ck, "config.json"))), llamaref.read_safetensors(path)


def micro_tensors(mb):
    """A micro-batch as tensors, after checking the official label layout on it."""
    B, T = mb["b"], mb["t"]
    ids = torch.tensor(mb["ids"], dtype=torch.int64).view(B, T)
    mask = torch.tensor(mb["mask"], dtype=torch.int64).view(B, T)
    pos = torch.tensor(mb["pos"], dtype=torch.int64).view(B, T)
    index = torch.tensor(mb["index"], dtype=torch.int64)
    targets = torch.tensor(mb["targets"], dtype=torch.int64)
    flat = ids.view(-1)
    # The logit at slot s predicts the token at s + 1 of the same row (the official shift of
    # logits[:-1] against labels[1:]), every row's labels end with EOS at its last slot, and
    # every target is among its allowed tokens.
    assert torch.equal(flat[index + 1], targets), "a logit slot does not predict its target"
    assert bool(((index + 1) // T == index // T).all()), "a logit slot is a row's last"
    assert bool((mask.view(-1)[index] == 1).all()), "a logit slot is padding"
    ends = set(((index + 2) % T == 0).nonzero().view(-1).tolist())  # predicts a row's last token
    assert len(ends) == B and all(int(targets[p]) == EOS for p in ends), "a row does not end with EOS"
    assert all(t in a for t, a in zip(mb["targets"], mb["allowed"])), "a target is outside its allowed set"
    return ids, mask, pos, index, targets


def dropout_hook(masks, modules, B, T, p):
    """llamaref's dropout hook for one micro-batch: masks[i] is module i's packed keep mask
    over the flat [B·T, in] LoRA inputs (padding rows included)."""
    index = {(m["layer"], m["module"]): i for i, m in enumerate(modules)}

    def apply(layer, module, x):
        bits = np.unpackbits(np.frombuffer(base64.b64decode(masks[index[(layer, module)]]), dtype=np.uint8))
        keep = torch.from_numpy(bits[: B * T * x.shape[-1]].astype(bool)).view(B, T, x.shape[-1])
        return x * keep / (1 - p)

    return apply


def group_loss(kind, loss, rows, targets, allowed, vocab):
    """The official compute_loss of one device's batch, on its supervised rows (prompt and
    padding rows are dropped first in the official code, so they never enter here)."""
    if kind == "lml":
        return lossref.lml_literal(rows, targets, loss["tau"])
    mask = torch.zeros(rows.shape[0], vocab, dtype=torch.bool)
    for r, a in enumerate(allowed):
        mask[r, a] = True
    if kind == "msl":
        return lossref.msl_literal(rows, targets, mask, loss["tau"])
    return lossref.bear_literal(rows, targets, mask, loss["tau"], loss["xi"], loss["lambda"], loss["k"])


def step_gradient(case, cfg, W, lora, run, s):
    """Forward and backward of optimizer step s: accumulates the step's gradient into the LoRA
    leaves and returns the step's loss (the mean of the groups' losses)."""
    groups, micro, total = case["steps"][s]["groups"], 0, 0.0
    for group in groups:
        rows, targets, allowed = [], [], []
        for mb in group["micro"]:
            ids, mask, pos, index, tg = micro_tensors(mb)
            lora["dropout"] = dropout_hook(run["masks"][s][micro], case["lora"]["modules"], mb["b"], mb["t"], run["dropout"]) \
                if run["dropout"] > 0 else None
            rows.append(llamaref.forward(cfg, W, ids, mask, pos, lora, sel=(index // mb["t"], index % mb["t"])))
            targets.append(tg)
            allowed += mb["allowed"]
            micro += 1
        loss = group_loss(run["loss"]["kind"], run["loss"], torch.cat(rows), torch.cat(targets), allowed, cfg["vocab_size"])
        assert torch.isfinite(loss), (run["name"], s, float(loss))
        (loss / len(groups)).backward()
        total += float(loss) / len(groups)
    lora["dropout"] = None
    return total


def matrices(params):
    return {k: v.detach().tolist() for k, v in params.items()}


def train(case, cfg, W, run):
    """The reference run of one configuration: what bear's stepper does, step by step."""
    params = {k: torch.tensor(v, dtype=DT, requires_grad=True) for k, v in sorted(case["init"].items())}
    lora = {"targets": case["lora"]["targets"], "r": case["lora"]["r"], "alpha": case["lora"]["alpha"], "weights": params}
    o = case["optim"]
    opt = torch.optim.AdamW(params.values(), lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                            weight_decay=o["weight_decay"], foreach=False)
    sched = optimref.linear_schedule_with_warmup(opt, o["warmup"], o["total"])
    steps = []
    for s in range(o["steps"]):
        opt.zero_grad(set_to_none=False)
        loss = step_gradient(case, cfg, W, lora, run, s)
        grads = {k: v.grad.detach().tolist() for k, v in params.items()}
        lr = opt.param_groups[0]["lr"]  # what this step runs with
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), o["max_grad_norm"])
        opt.step()
        sched.step()
        steps.append({"loss": loss, "grad_norm": float(norm), "lr": lr, "grads": grads, "params": matrices(params)})
        print(f"{run['name']} step {s + 1}: loss {loss:.6f}, grad norm {float(norm):.4f}, lr {lr:.4g}")
    return steps, {k: v.detach() for k, v in params.items()}


def read_peft_adapter(folder, cfg):
    """bear's adapter, by PEFT's file layout and key names only."""
    conf = json.load(open(os.path.join(folder, "adapter_config.json")))
    assert conf["peft_type"] == "LORA" and conf["bias"] == "none" and not conf["fan_in_fan_out"] and not conf["use_rslora"], conf
    W = llamaref.read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    paths = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
             "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj"}
    want = {f"base_model.model.model.layers.{l}.{paths[m]}.lora_{w}.weight"
            for l in range(cfg["num_hidden_layers"]) for m in conf["target_modules"] for w in "AB"}
    assert set(W) == want, sorted(set(W) ^ want)
    for k, v in W.items():
        assert v.shape[0 if ".lora_A." in k else 1] == conf["r"], (k, tuple(v.shape))
    return {"targets": conf["target_modules"], "r": conf["r"], "alpha": conf["lora_alpha"], "weights": W}


def peft_check(case, cfg, W, folder, trained):
    """Logits of bear's adapter read by PEFT's names, at the case's check micro-batch."""
    lora = read_peft_adapter(folder, cfg)
    at = case["peft_check"]
    mb = case["steps"][at["step"]]["groups"][at["group"]]["micro"][at["micro"]]
    ids, mask, pos, index, targets = micro_tensors(mb)
    with torch.no_grad():
        logits = llamaref.forward(cfg, W, ids, mask, pos, lora, sel=(index // mb["t"], index % mb["t"]))
    cols = sorted(set(range(0, cfg["vocab_size"], COLUMN_STRIDE)) | set(targets.tolist()))
    diff = max(float((lora["weights"][k] - v).abs().max()) for k, v in trained.items())
    return dict(at, columns=cols, logits=logits[:, cols].tolist(), adapter_vs_reference=diff)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bear", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    case = json.loads(gzip.open(a.case).read())
    cfg, W = load_checkpoint(case, a.bear, a.work)
    runs = []
    for run in case["runs"]:
        steps, trained = train(case, cfg, W, run)
        peft = peft_check(case, cfg, W, os.path.join(os.path.dirname(a.case), "adapters", run["name"]), trained)
        print(f"{run['name']}: bear's adapter vs the reference's: max |diff| {peft['adapter_vs_reference']:.3g}")
        runs.append({"name": run["name"], "steps": steps, "peft": peft})
    doc = {"generator": "tools/reference/trainref.py", "torch": torch.__version__, "runs": runs}
    with open(a.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(json.dumps(doc, separators=(",", ":")).encode())


if __name__ == "__main__":
    main()
