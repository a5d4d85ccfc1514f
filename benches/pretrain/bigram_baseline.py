#!/usr/bin/env python3
"""Reference floors for gutenberg-small: unigram and add-k-smoothed bigram cross-entropy.

Counts are taken on all train tokens of a directory made by `ember prepare` (the gutenberg-small
recipe in configs/gutenberg-small.toml) and scored on its held-out tokens; bits per byte use the
held-out text's bytes per token (specials count as tokens here, as a rough floor).

    ~/.cache/ember-peers/bin/python benches/pretrain/bigram_baseline.py runs/gutenberg/data
"""
import json, math, os, sys

import numpy as np


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "runs/gutenberg/data"
    meta = json.load(open(os.path.join(d, "meta.json")))
    v = meta["vocab_size"]
    dt = np.uint16 if meta["dtype"] == "u16" else np.uint32
    load = lambda s: np.concatenate([np.memmap(os.path.join(d, x["file"]), dtype=dt, mode="r", offset=64).astype(np.int64)
                                     for x in meta["splits"][s]["shards"]])
    tr, va = load("train"), load("val")
    bytes_per_token = meta["splits"]["val"]["bytes"] / len(va)
    c = np.bincount(tr, minlength=v).astype(np.float64) + 0.5
    p = c / c.sum()
    uni = -np.log(p[va]).mean()
    bc = np.bincount(tr[:-1] * v + tr[1:], minlength=v * v).reshape(v, v)
    k = 0.01
    num = bc.reshape(-1)[va[:-1] * v + va[1:]] + k * v * p[va[1:]]
    den = bc.sum(1)[va[:-1]] + k * v
    bi = -np.log(num / den).mean()
    for name, ce in [("unigram", uni), ("bigram (add-k 0.01)", bi)]:
        print(f"{name}: {ce:.3f} nats/token = {ce / (math.log(2) * bytes_per_token):.3f} bits per byte")


if __name__ == "__main__":
    main()
