#!/usr/bin/env python3
"""Write a catalogue of N synthetic titles for scale measurements (issue: evidence and scale).

usage: tools/scale-catalogue.py N OUT [--data testdata/office] [--seed 1]

OUT gets id2name4Rec.json: the data folder's own titles first (ids unchanged), then titles of
4 to 14 words drawn at random from the words of those titles until there are N distinct ones;
and a copy of the folder's train_*.csv and test_*.csv, so that bear eval and bear train read
OUT unchanged. The same arguments give the same bytes.
"""
import argparse
import json
import os
import random
import shutil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--data", default="testdata/office")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with open(os.path.join(a.data, "id2name4Rec.json")) as f:
        titles = json.load(f)
    if a.n < len(titles):
        raise SystemExit(f"N {a.n}: the data folder alone has {len(titles)} titles")
    words = [w for t in titles.values() for w in t.split()]
    rng = random.Random(a.seed)
    seen = set(titles.values())
    next_id = max(int(k) for k in titles) + 1
    while len(titles) < a.n:
        t = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        if t not in seen:
            seen.add(t)
            titles[str(next_id)] = t
            next_id += 1
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "id2name4Rec.json"), "w") as f:
        json.dump(titles, f)
    for name in os.listdir(a.data):
        if name.endswith(".csv"):
            shutil.copy(os.path.join(a.data, name), os.path.join(a.out, name))


if __name__ == "__main__":
    main()
