#!/usr/bin/env python3
"""Pretraining speed and memory, Ember vs PyTorch (CPU), side by side in one run.

Both sides train nanoGPT's shakespeare-char CPU model (configs/shakespeare-char.toml: 4 layers,
4 heads, 128 wide, context 64, batch 12) on the same prepared shards, with the same loop:
AdamW (decay on matrices), warmup + cosine, global grad-norm clipping at 1.0, random windows.
The PyTorch side is Hugging Face's GPT2LMHeadModel (SDPA attention, exact GELU), so both sides
use biases here (`--set model.bias=true` for Ember). Thread counts are equal.

Reported: median tokens/s over the steps after the first 10 (each side), their ratio, peak
RSS, and RSS early vs at the end of a 1000-step run (flat memory = no growth per step).
With --quality, both sides run the full 2000 steps and report the held-out loss on the same
windows (the whole held-out 10%).

    cargo build --bin ember
    ~/.cache/ember-peers/bin/python benches/pretrain/bench.py --out /tmp/pretrain_bench.md
"""
import argparse, json, math, os, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMBER = os.environ.get("EMBER_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "ember"))
CONFIG = os.path.join(ROOT, "configs", "shakespeare-char.toml")
CORPUS = os.path.join(ROOT, "data", "tinyshakespeare.txt")
B, T, L, H, D = 12, 64, 4, 4, 128


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None


def prepare(work):
    tok = os.path.join(work, "tok.json")
    data = os.path.join(work, "data")
    subprocess.run([EMBER, "tokenizer", "train", "--input", CORPUS, "--vocab-size", "261", "--out", tok], check=True, capture_output=True)
    subprocess.run([EMBER, "prepare", "--tokenizer", tok, "--input", CORPUS, "--val-fraction", "0.1", "--out", data], check=True, capture_output=True)
    return data


def ember_side(work, data, steps, threads, full_eval):
    run = os.path.join(work, f"ember-{steps}")
    sets = [f"run.out_dir={run!r}".replace("'", '"'), f"data.dir=\"{data}\"", f"train.max_steps={steps}", "model.bias=true",
            "train.eval_every=0", "train.save_every=0", f"train.eval_tokens={0 if full_eval else 768}", "train.log_every=1000000"]
    cmd = [EMBER, "pretrain", "--device", "cpu", "--config", CONFIG] + sum([["--set", s] for s in sets], [])
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    samples = []  # (train rows so far, rss kB)
    metrics = os.path.join(run, "metrics.jsonl")

    def watch():
        while p.poll() is None:
            r = rss_kb(p.pid)
            try:
                with open(metrics) as f:
                    n = sum(1 for l in f if '"train"' in l)
            except OSError:
                n = 0
            if r:
                samples.append((n, r))
            time.sleep(0.2)
    w = threading.Thread(target=watch)
    w.start()
    out, err = p.communicate()
    w.join()
    if p.returncode != 0:
        sys.exit(f"ember failed: {err}")
    rows = [json.loads(l) for l in open(metrics)]
    tps = [r["tokens_per_s"] for r in rows if r["kind"] == "train" and r["step"] > 10]
    val = [r["val_loss"] for r in rows if r["kind"] == "eval"][-1]
    return dict(tps=statistics.median(tps), samples=samples, peak=max(s[1] for s in samples), val=val)


def torch_side(data, steps, threads, full_eval):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    load = lambda split: np.memmap(os.path.join(data, f"{split}-00000.bin"), dtype=np.uint16, mode="r", offset=64)
    train, val = load("train"), load("val")
    vocab = 261
    cfg = GPT2Config(vocab_size=vocab, n_positions=T, n_embd=D, n_layer=L, n_head=H, activation_function="gelu",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(cfg).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    warm, lr, min_lr = 100, 1e-3, 1e-4

    def lr_at(s):
        if s < warm:
            return lr * (s + 1) / (warm + 1)
        r = min(1.0, (s - warm) / max(1, steps - warm))
        return min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (lr - min_lr)
    g = np.random.default_rng(1337)
    times, samples = [], []
    for s in range(steps):
        ix = g.integers(0, len(train) - T - 1, B)
        w = torch.from_numpy(np.stack([train[i:i + T + 1].astype(np.int64) for i in ix]))
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(s)
        loss = F.cross_entropy(model(input_ids=w[:, :-1]).logits.reshape(-1, vocab), w[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        if s % 50 == 0:
            samples.append((s, rss_kb(os.getpid())))
    model.eval()
    n_win = (len(val) - 1) // T
    n_eval = n_win if full_eval else 12
    eot = 256  # the first special id of a 261-id byte-level tokenizer: excluded as in Ember
    nll, cnt = 0.0, 0
    with torch.no_grad():
        for b0 in range(0, n_eval - n_eval % B, B):
            starts = [(w * n_win // n_eval) * T for w in range(b0, b0 + B)]
            w = torch.from_numpy(np.stack([val[i:i + T + 1].astype(np.int64) for i in starts]))
            logits = model(input_ids=w[:, :-1]).logits
            y = w[:, 1:]
            l = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), reduction="none")
            m = (y.reshape(-1) < eot).float()
            nll += float((l * m).sum())
            cnt += int(m.sum())
    return dict(tps=B * T / statistics.median(times[10:]), samples=samples, peak=max(s[1] for s in samples), val=nll / max(cnt, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quality", action="store_true", help="2000 steps each and the full held-out loss")
    ap.add_argument("--out")
    a = ap.parse_args()
    steps = 2000 if a.quality else a.steps
    with tempfile.TemporaryDirectory() as work:
        data = prepare(work)
        e = ember_side(work, data, steps, a.threads, a.quality)
        t = torch_side(data, steps, a.threads, a.quality)
    import torch, transformers
    early = [r for n, r in e["samples"] if n >= 100][:1] or [e["samples"][0][1]]
    lines = [
        f"Pretraining, shakespeare-char model with biases (0.83 M params), batch 12 × 64, {steps} steps, {a.threads} threads, CPU",
        f"PyTorch {torch.__version__}, transformers {transformers.__version__}; Ember at {subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}",
        "",
        "| | Ember | PyTorch | Ember / PyTorch |",
        "|---|---|---|---|",
        f"| tokens/s (median step) | {e['tps']:.0f} | {t['tps']:.0f} | {e['tps'] / t['tps']:.2f} |",
        f"| peak RSS | {e['peak'] / 1024:.0f} MiB | {t['peak'] / 1024:.0f} MiB | {e['peak'] / t['peak']:.2f} |",
        f"| Ember RSS at step ~100 → end | {early[0] / 1024:.0f} → {e['samples'][-1][1] / 1024:.0f} MiB | | |",
        f"| held-out loss at the end ({'whole held-out split' if a.quality else '12 windows'}) | {e['val']:.4f} | {t['val']:.4f} | |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        open(a.out, "w").write(text)


if __name__ == "__main__":
    main()
