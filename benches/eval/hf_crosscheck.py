#!/usr/bin/env python3
"""Cross-checks `ember eval` against Hugging Face transformers, and times HellaSwag scoring.

Exports a checkpoint to Hugging Face GPT-2 format (`ember export`), runs `ember eval` on 200
HellaSwag items and 200 BLiMP pairs with `--details` (per-choice log-likelihoods), then scores the
same requests with `GPT2LMHeadModel` + the exported `tokenizer.json` (HF `tokenizers`), built the
way lm-evaluation-harness builds them: context + " " + choice, the continuation being what follows
the context's own encoding; BLiMP sentences after the `<|endoftext|>` token. Reports the largest
per-choice difference (target: < 1e-3) and agreement of acc/acc_norm, then HellaSwag items/s of
Ember and of transformers on the same items and thread count (2 by default).

    cargo build --bin ember
    ~/.cache/ember-peers/bin/python benches/eval/hf_crosscheck.py --checkpoint runs/gutenberg/small
"""
import argparse, json, os, subprocess, sys, tempfile, time

import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
EMBER = os.environ.get("EMBER_BIN", os.path.join(TARGET, "debug", "ember"))
SHARED = os.environ.get("EMBER_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))


def run(*cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return out.stdout


def read_jsonl(path):
    if not os.path.exists(path):
        sys.exit(f"missing {path}: the eval sets live in ../shared/data/eval (set EMBER_SHARED_DATA)")
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def blimp_subset(rows, limit):
    """Ember's --limit for a grouped task: the first items of every paradigm in turn."""
    rank, keyed = {}, []
    for i, r in enumerate(rows):
        rank[r["UID"]] = rank.get(r["UID"], 0) + 1
        keyed.append((rank[r["UID"]], i))
    chosen = sorted(i for _, i in sorted(keyed)[:limit])
    return [rows[i] for i in chosen]


def encode_pair(tok, context, continuation):
    kept = context.rstrip()
    continuation = context[len(kept):] + continuation
    ctx = tok.encode(kept, add_special_tokens=False).ids
    whole = tok.encode(kept + continuation, add_special_tokens=False).ids
    return ctx, whole[len(ctx):]


def score(model, block, requests):
    """Summed log-probabilities, one full forward per request group (the choices of an item)."""
    out = []
    with torch.no_grad():
        for group in requests:
            rows = []
            for ctx, cont in group:
                full = (ctx + cont)[-(block + 1):]
                rows.append((full[:-1], full[1:], min(len(cont), len(full) - 1)))
            n = max(len(r[0]) for r in rows)
            x = torch.zeros(len(rows), n, dtype=torch.long)
            for i, (inp, _, _) in enumerate(rows):
                x[i, : len(inp)] = torch.tensor(inp)
            logp = torch.log_softmax(model(x).logits.float(), dim=-1)
            for i, (inp, tgt, k) in enumerate(rows):
                pos = torch.arange(len(inp) - k, len(inp))
                out.append(logp[i, pos, torch.tensor(tgt[len(tgt) - k:])].sum().item())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="runs/gutenberg/small")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = tempfile.mkdtemp(prefix="ember-evalx-")
    hf = os.path.join(work, "hf")
    run(EMBER, "export", "--checkpoint", a.checkpoint, "--format", "hf-gpt2", "--out", hf)
    details, results = os.path.join(work, "items.jsonl"), os.path.join(work, "results.json")
    eval_dir = os.path.join(SHARED, "eval")
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    t = time.time()
    subprocess.run([EMBER, "eval", "--checkpoint", a.checkpoint, "--tasks", "hellaswag,blimp", "--limit", str(a.limit),
                    "--eval-data", eval_dir, "--details", details, "--out", results, "--device", "cpu", "--no-report"],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    ember_rows = [json.loads(l) for l in open(details)]
    ember_res = json.load(open(results))["checkpoints"][0]
    model = GPT2LMHeadModel.from_pretrained(hf).eval()
    block = model.config.n_positions
    tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")

    hs = read_jsonl(os.path.join(eval_dir, "hellaswag_val.jsonl"))[: a.limit]
    hs_req = [[encode_pair(tok, d["context"], " " + e) for e in d["endings"]] for d in hs]
    bl = blimp_subset(read_jsonl(os.path.join(eval_dir, "blimp_200per.jsonl")), a.limit)
    bl_req = [[([eot], tok.encode(" " + s, add_special_tokens=False).ids) for s in (d["sentence_good"], d["sentence_bad"])] for d in bl]

    t0 = time.time()
    hs_ll = score(model, block, hs_req)
    hf_hs_secs = time.time() - t0
    bl_ll = score(model, block, bl_req)

    report = {}
    for task, lls, items in (("hellaswag", hs_ll, hs), ("blimp", bl_ll, bl)):
        mine = [r for r in ember_rows if r["task"] == task]
        flat = [x for r in mine for x in r["logliks"]]
        assert len(flat) == len(lls), (task, len(flat), len(lls))
        diff = max(abs(x - y) for x, y in zip(flat, lls))
        k, agree = 0, 0
        for r in mine:
            n = len(r["logliks"])
            theirs = lls[k:k + n]
            agree += int(max(range(n), key=lambda i: theirs[i]) == max(range(n), key=lambda i: r["logliks"][i]))
            k += n
        report[task] = {"items": len(mine), "choices": len(flat), "max_abs_diff": diff,
                        "same_argmax": f"{agree}/{len(mine)}"}
    ember_ips = ember_res["items_per_s"]["hellaswag"]
    hf_ips = len(hs) / hf_hs_secs
    report["hellaswag_items_per_s"] = {"ember": round(ember_ips, 2), "transformers": round(hf_ips, 2),
                                       "ratio": round(ember_ips / hf_ips, 3), "threads": a.threads}
    report["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    print(json.dumps(report, indent=1))
    ok = all(report[t]["max_abs_diff"] < 1e-3 for t in ("hellaswag", "blimp"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
