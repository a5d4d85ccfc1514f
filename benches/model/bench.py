#!/usr/bin/env python3
"""Model speed, Ember vs PyTorch (CPU), side by side in one run.

For each shape (nanoGPT's CPU config; a 6-layer 384-wide context-256 model) and each side:
the median time of a training step (forward, cross-entropy, backward, AdamW update) and greedy
generation speed with a KV cache (batch 1, 256 new tokens). Rounds alternate Ember / PyTorch.
The PyTorch side is Hugging Face's GPT2LMHeadModel (SDPA attention) with the same shape,
exact GELU, no dropout, `torch.optim.AdamW`, and `torch.set_num_threads` equal to Ember's
thread count; its generation loop calls the model with `past_key_values` directly.

    cargo build --bin ember
    ~/.cache/ember-peers/bin/python benches/model/bench.py --out /tmp/model_bench.md

With `--bf16` both sides train with bfloat16 products (generation stays f32): Ember with
`ember bench --bf16-products` (`train.precision = "bf16-mixed"`), PyTorch with the forward and
loss under `torch.autocast("cpu", dtype=torch.bfloat16)` — oneDNN's bfloat16 products, on AMX
where the CPU has it — the usual way to train in mixed precision on a CPU with PyTorch.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMBER = os.environ.get("EMBER_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "ember"))
SHAPES = {"nano": dict(vocab=65, n_layer=4, n_head=4, n_embd=128, ctx=64, batch=12),
          "medium": dict(vocab=8192, n_layer=6, n_head=6, n_embd=384, ctx=256, batch=8)}


def torch_side(shape, steps, warmup, gen_tokens, threads, bf16=False):
    import contextlib
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    s = SHAPES[shape]

    def make(ctx):
        cfg = GPT2Config(vocab_size=s["vocab"], n_positions=ctx, n_embd=s["n_embd"], n_layer=s["n_layer"],
                         n_head=s["n_head"], activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                         attn_pdrop=0.0, tie_word_embeddings=True)
        cfg._attn_implementation = "sdpa"
        return GPT2LMHeadModel(cfg)

    model = make(s["ctx"]).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, eps=1e-8)
    b, t, v = s["batch"], s["ctx"], s["vocab"]
    times = []
    for step in range(warmup + steps):
        data = torch.randint(0, v, (b, t + 1))
        x, y = data[:, :-1], data[:, 1:]
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = model(input_ids=x).logits
            loss = F.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    gen = None
    if gen_tokens:
        g = make(max(t, gen_tokens + 1)).eval()
        with torch.no_grad():
            def run(n):
                cur, past = torch.tensor([[1]]), None
                for _ in range(n):
                    out = g(input_ids=cur, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    cur = out.logits[:, -1:].argmax(-1)
            run(4)
            t0 = time.perf_counter()
            run(gen_tokens)
            gen = gen_tokens / (time.perf_counter() - t0)
    return {"step_ms": step_s * 1e3, "train_tokens_per_s": b * t / step_s, "gen_tokens_per_s": gen}


def ember_side(shape, steps, warmup, gen_tokens, bf16=False):
    out = subprocess.run([EMBER, "bench", "--shape", shape, "--steps", str(steps), "--warmup", str(warmup),
                          "--gen-tokens", str(gen_tokens), "--device", "cpu", "--json"]
                         + (["--bf16-products"] if bf16 else []), capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ember bench failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--shapes", nargs="+", default=["nano", "medium"])
    ap.add_argument("--bf16", action="store_true", help="bfloat16 training products on both sides")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not os.path.exists(EMBER):
        sys.exit(f"missing {EMBER}: build with `cargo build --bin ember`")
    md = [f"Machine: {os.cpu_count()} cores, {a.threads} threads each side; {a.rounds} alternating rounds of "
          f"{a.steps} timed steps (+{a.warmup} warm-up), medians"
          + ("; bfloat16 training products on both sides" if a.bf16 else "") + ".\n",
          "| shape | Ember step | PyTorch step | step ratio (PyTorch/Ember) | Ember gen tok/s | PyTorch gen tok/s | gen ratio (Ember/PyTorch) |",
          "|---|---|---|---|---|---|---|"]
    spreads = []
    for shape in a.shapes:
        e_runs, p_runs = [], []
        for _ in range(a.rounds):
            e_runs.append(ember_side(shape, a.steps, a.warmup, a.gen_tokens, a.bf16))
            p_runs.append(json.loads(subprocess.run([sys.executable, __file__, "peer", shape, str(a.steps), str(a.warmup),
                                                     str(a.gen_tokens), str(a.threads), str(int(a.bf16))],
                                                    capture_output=True, text=True, check=True).stdout))
        med = lambda runs, k: statistics.median(r[k] for r in runs)
        e_step, p_step = med(e_runs, "step_ms"), med(p_runs, "step_ms")
        # Each round's ratio from its two adjacent runs: the VM's load drifts over minutes, and a
        # pair run back to back sees the same load, so the spread of these says how firm the
        # ratio of the medians is.
        pairs = sorted(p["step_ms"] / e["step_ms"] for e, p in zip(e_runs, p_runs))
        print(f"{shape}: per-round step ratios {', '.join(f'{r:.2f}' for r in pairs)}", file=sys.stderr)
        spreads.append(f"{shape}: per-round step ratios (PyTorch/Ember, sorted) {', '.join(f'{r:.2f}' for r in pairs)}")
        e_gen, p_gen = med(e_runs, "gen_tokens_per_s"), med(p_runs, "gen_tokens_per_s")
        md.append(f"| {shape} | {e_step:.0f} ms | {p_step:.0f} ms | {p_step / e_step:.2f}× | {e_gen:.0f} | {p_gen:.0f} | {e_gen / p_gen:.2f}× |")
    text = "\n".join(md + [""] + spreads) + "\n"
    print(text)
    if a.out:
        open(a.out, "w").write(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        _, _, shape, steps, warmup, gen, threads, bf16 = sys.argv
        print(json.dumps(torch_side(shape, int(steps), int(warmup), int(gen), int(threads), bf16 == "1")))
    else:
        main()
