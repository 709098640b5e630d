#!/usr/bin/python3
"""PyTorch reference of the Hugging Face Llama forward pass, for bear's golden logits.

An independent transcription of transformers' LlamaForCausalLM (eager attention) in float64:
RMSNorm, rotary embeddings (half-split layout; inverse frequencies and angles and their cos/sin computed
in float32 exactly as transformers does, llama3 scaling included), grouped-query attention with a causal and
left-padding mask, SwiGLU MLP, tied or untied LM head, and PEFT LoRA on chosen projections
(y = x W^T + (x A^T) B^T * alpha/r).

Usage (see `make goldens-forward`):
  /usr/bin/python3 tools/reference/llamaref.py --bear bin/bear --cases testdata/forward/cases.json \
      --work .cache/goldens/forward --out testdata/forward/golden.json.gz

For every case it writes the checkpoint with `bear init --config` (so the reference reads the very
bytes bear reads), a PEFT adapter when the case has LoRA (committed beside the cases, since bear's
adapter reader is under test), the reference logits at every real token of every sequence, and for
LoRA cases the gradients of <logits, cotangent> with respect to every LoRA matrix by autograd.
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import struct
import subprocess

import numpy as np
import torch

DT = torch.float64


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[a:b]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        elif e["dtype"] == "F64":
            arr = np.frombuffer(raw, dtype="<f8").copy()
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']}")
        out[name] = torch.from_numpy(arr.reshape(e["shape"]))
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def inv_freq(cfg):
    """transformers' default / llama3 rope init, in float32 as it computes them."""
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    base = cfg["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, scaled)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, W, ids, mask, pos, lora=None, sel=None):
    """ids, mask, pos: int64 [B, T]. Returns logits [B, T, V] in DT, or [n, V] at the (row, token)
    index tensors sel = (rows, tokens) when given (the head then runs at those positions only)."""
    B, T = ids.shape
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]

    def linear(x, layer, module, path):
        y = x @ W[f"model.layers.{layer}.{path}.weight"].T
        if lora and module in lora["targets"]:
            A = lora["weights"][f"base_model.model.model.layers.{layer}.{path}.lora_A.weight"]
            Bm = lora["weights"][f"base_model.model.model.layers.{layer}.{path}.lora_B.weight"]
            if lora.get("dropout"):  # PEFT's lora_dropout, on the LoRA branch's input only (trainref.py)
                x = lora["dropout"](layer, module, x)
            y = y + ((x @ A.T) @ Bm.T) * (lora["alpha"] / lora["r"])
        return y

    freqs = (pos.float()[:, :, None] * inv_freq(cfg)[None, None, :])  # float32, as transformers
    emb = torch.cat((freqs, freqs), dim=-1)
    # transformers computes cos and sin in float32 too, then casts to the model dtype.
    cos = emb.cos().to(W["model.norm.weight"].dtype)[:, None]
    sin = emb.sin().to(W["model.norm.weight"].dtype)[:, None]

    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    allowed = causal[None, None] & (mask[:, None, None, :] == 1)  # [B,1,T,T]
    lowest = torch.finfo(W["model.norm.weight"].dtype).min

    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        h = rms_norm(x, W[f"model.layers.{l}.input_layernorm.weight"], eps)
        q = linear(h, l, "q_proj", "self_attn.q_proj").view(B, T, nh, hd).transpose(1, 2)
        k = linear(h, l, "k_proj", "self_attn.k_proj").view(B, T, nkv, hd).transpose(1, 2)
        v = linear(h, l, "v_proj", "self_attn.v_proj").view(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(2, 3)) / math.sqrt(hd)
        s = torch.where(allowed, s, torch.tensor(lowest, dtype=s.dtype))
        p = torch.softmax(s, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + linear(o, l, "o_proj", "self_attn.o_proj")
        h = rms_norm(x, W[f"model.layers.{l}.post_attention_layernorm.weight"], eps)
        g = linear(h, l, "gate_proj", "mlp.gate_proj")
        u = linear(h, l, "up_proj", "mlp.up_proj")
        x = x + linear(torch.nn.functional.silu(g) * u, l, "down_proj", "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    if sel is not None:
        x = x[sel[0], sel[1]]
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def left_pad(seqs, offset):
    """bear's batch layout: left padding with id 0, positions counted from the first real token
    (plus offset) and 1 on padding, as transformers' generate derives them from the mask."""
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    pos = torch.ones_like(ids)
    for i, s in enumerate(seqs):
        p = T - len(s)
        ids[i, p:] = torch.tensor(s)
        mask[i, p:] = 1
        pos[i, p:] = torch.arange(len(s)) + offset
    return ids, mask, pos


def make_lora(cfg, spec, out_dir):
    rng = np.random.default_rng(spec["seed"])
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or H // nh
    nkv = cfg.get("num_key_value_heads") or nh
    dims = {"q_proj": (nh * hd, H), "k_proj": (nkv * hd, H), "v_proj": (nkv * hd, H), "o_proj": (H, nh * hd),
            "gate_proj": (cfg["intermediate_size"], H), "up_proj": (cfg["intermediate_size"], H),
            "down_proj": (H, cfg["intermediate_size"])}
    paths = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
             "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
             "down_proj": "mlp.down_proj"}
    r, tensors = spec["r"], {}
    for l in range(cfg["num_hidden_layers"]):
        for m in spec["targets"]:
            out, inp = dims[m]
            key = f"base_model.model.model.layers.{l}.{paths[m]}"
            tensors[key + ".lora_A.weight"] = (rng.standard_normal((r, inp)) * spec["std"]).astype(np.float32)
            tensors[key + ".lora_B.weight"] = (rng.standard_normal((out, r)) * spec["std"]).astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors)
    conf = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": spec["alpha"],
            "lora_dropout": 0.05, "target_modules": spec["targets"], "bias": "none", "use_rslora": False,
            "fan_in_fan_out": False, "inference_mode": True, "base_model_name_or_path": None}
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    return {"targets": spec["targets"], "r": r, "alpha": spec["alpha"],
            "weights": {k: torch.from_numpy(v.astype(np.float64)).requires_grad_(True) for k, v in tensors.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bear", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = json.load(open(a.cases))
    case_dir = os.path.dirname(a.cases)
    results = []
    for case in spec["cases"]:
        ck = os.path.join(a.work, case["name"])
        cfg_path = os.path.join(a.work, case["name"] + ".config.json")
        os.makedirs(a.work, exist_ok=True)
        json.dump(case["config"], open(cfg_path, "w"))
        init = case["init"]
        subprocess.run([a.bear, "init", "--config", cfg_path, "--out", ck, "--seed", str(init["seed"]),
                        "--std", str(init["std"]), "--norm-jitter", str(init["norm_jitter"]),
                        "--dtype", init["dtype"]], check=True)
        cfg = json.load(open(os.path.join(ck, "config.json")))
        W = read_safetensors(os.path.join(ck, "model.safetensors"))
        sha = hashlib.sha256(open(os.path.join(ck, "model.safetensors"), "rb").read()).hexdigest()
        lora = None
        if case.get("lora"):
            lora = make_lora(cfg, case["lora"], os.path.join(case_dir, case["lora"]["dir"]))
        ids, mask, pos = left_pad(case["sequences"], case.get("position_offset", 0))
        logits = forward(cfg, W, ids, mask, pos, lora)
        T = ids.shape[1]
        sel = [(i, t) for i, s in enumerate(case["sequences"]) for t in range(T - len(s), T)]
        rows = [[float(v) for v in logits[i, t].detach()] for i, t in sel]
        result = {"name": case["name"], "checkpoint_sha256": sha, "logits": rows}
        if lora:
            # LoRA gradients of <selected logits, cotangent> by autograd (PEFT's parameterisation).
            rng = np.random.default_rng(case["lora"]["seed"] + 1)
            cot = rng.standard_normal((len(sel), logits.shape[-1]))
            picked = torch.stack([logits[i, t] for i, t in sel])
            (picked * torch.from_numpy(cot)).sum().backward()
            result["cotangent"] = cot.tolist()
            result["lora_grads"] = {k: v.grad.tolist() for k, v in lora["weights"].items()}
        results.append(result)
        print(f"{case['name']}: {len(rows)} rows, max |logit| {logits.abs().max().item():.3f}")
    # mtime=0 keeps the file byte-identical when nothing changed.
    with open(a.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps({"generator": "tools/reference/llamaref.py", "torch": torch.__version__, "cases": results}).encode())


if __name__ == "__main__":
    main()
