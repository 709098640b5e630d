#!/usr/bin/python3
"""Golden rank_pattern / alpha_pattern matches for bear's LoRASpec, from Python's re itself.

PEFT gives each adapted module its own rank and alpha (LoraModel._create_and_replace in
peft/tuners/lora/model.py): it looks the module's name up in rank_pattern and in alpha_pattern
through get_pattern_key (peft/utils/other.py), whose rule pattern_key below restates, and falls
back to r and lora_alpha when no key matches. PEFT itself is not installed here; the matching
is Python's re, which is what this file pins down. The module's name is the one
LlamaForCausalLM.named_modules() gives: model.layers.{i}.self_attn.q_proj and so on.

The "match" section lists module names and ordered pattern keys with the key Python picks (or
null), the rank rank_pattern.get gives with values 100, 101, ... for the keys in order and r 8,
and the alpha with values 1000.5, 1001.5, ... and lora_alpha 16. The "parse" section lists
adapter_config.json texts with rank_pattern as json.loads orders it (insertion order; a
repeated key keeps its first place and its last value).

Used by onnx/llama/lorapattern_test.go (TestPatternMatchesPython) and
onnx/peft/pattern_test.go (TestParsePatternOrderMatchesPython).

Usage: /usr/bin/python3 tools/reference/peftpattern.py [--out testdata/peft/patterns.json]
"""

import argparse
import json
import re

MODULE_PATH = {
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}


def pattern_key(keys, name):
    """The key PEFT's pattern lookup picks for the module `name`: the first key K, in order,
    whose regular expression (.*\.)?(K)$ matches `name` from its start (re.match); `name`
    itself when none does."""
    return next((k for k in keys if re.match(r"(.*\.)?(" + k + r")$", name)), name)


# (description, ordered keys, modules as (layer, module)).
CASES = [
    ("bare module name", ["q_proj"], [(0, "q_proj"), (5, "q_proj"), (0, "k_proj")]),
    ("path inside the layer", ["self_attn.q_proj"], [(0, "q_proj"), (1, "v_proj")]),
    ("one layer's module", ["layers.0.self_attn.q_proj"], [(0, "q_proj"), (10, "q_proj"), (1, "q_proj")]),
    ("full name", ["model.layers.3.mlp.down_proj"], [(3, "down_proj"), (13, "down_proj"), (3, "up_proj")]),
    ("escaped layer regex", [r"layers\.1\d*\..*"], [(1, "q_proj"), (12, "down_proj"), (2, "q_proj"), (21, "up_proj")]),
    ("unescaped dots reach layer 10", ["layers.1.*"], [(1, "o_proj"), (10, "q_proj"), (2, "q_proj")]),
    ("suffix without a dot boundary", ["_proj"], [(0, "q_proj")]),
    ("suffix inside a name part", ["attn.q_proj"], [(0, "q_proj")]),
    ("part of the path only", ["self_attn"], [(0, "q_proj")]),
    ("regex over the whole name", [".*_proj"], [(0, "q_proj"), (7, "gate_proj")]),
    ("alternation inside the group", ["gate|up_proj"], [(0, "gate_proj"), (0, "up_proj")]),
    ("caret key as in PEFT's docs", ["^model.layers.0.self_attn.q_proj"], [(0, "q_proj"), (1, "q_proj")]),
    ("module family", [r"mlp\..*"], [(4, "gate_proj"), (4, "down_proj"), (4, "o_proj")]),
    ("case matters", ["Q_PROJ"], [(0, "q_proj")]),
    # The key closes PEFT's group: (.*\.)?(q_proj)|(k_proj)$, anchored at the start by re.match.
    ("key escaping the group", ["q_proj)|(k_proj"], [(0, "q_proj"), (0, "k_proj")]),
    ("first key wins", ["q_proj", "layers.0.self_attn.q_proj"], [(0, "q_proj"), (1, "q_proj")]),
    ("first key wins, reversed", ["layers.0.self_attn.q_proj", "q_proj"], [(0, "q_proj"), (1, "q_proj")]),
    ("no key matches", ["k_proj", "down_proj"], [(0, "q_proj"), (2, "up_proj")]),
    ("later key matches", ["k_proj", r"layers\.[02]\..*", "v_proj"], [(0, "v_proj"), (2, "q_proj"), (1, "v_proj")]),
]

PARSE = [
    '{"rank_pattern": {"v_proj": 4, "layers\\\\.1\\\\..*": 2, "q_proj": 16}}',
    '{"rank_pattern": {"q_proj": 4, "v_proj": 2, "q_proj": 8}}',
    '{"rank_pattern": {"a": 1}, "rank_pattern": {"z_proj": 3, "b_proj": 5}}',
]


def match_cases():
    out = []
    for desc, keys, modules in CASES:
        rank_pattern = {k: 100 + i for i, k in enumerate(keys)}
        alpha_pattern = {k: 1000.5 + i for i, k in enumerate(keys)}
        for layer, module in modules:
            name = f"model.layers.{layer}.{MODULE_PATH[module]}"
            key = pattern_key(rank_pattern.keys(), name)
            out.append({
                "desc": desc, "keys": keys, "layer": layer, "module": module, "name": name,
                "match": key if key in keys else None,
                "rank": rank_pattern.get(key, 8),
                "alpha": alpha_pattern.get(pattern_key(alpha_pattern.keys(), name), 16),
            })
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="testdata/peft/patterns.json")
    args = ap.parse_args()
    parse = [{"json": t, "rank_pattern": list(json.loads(t)["rank_pattern"].items())} for t in PARSE]
    with open(args.out, "w") as f:
        json.dump({"match": match_cases(), "parse": parse}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
