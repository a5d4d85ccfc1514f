#!/usr/bin/env python3
"""Per-parameter gradients of Ember and PyTorch at the same weights on the same batch.

Ember trains one step from an `ember init` checkpoint with a checkpoint after it; its AdamW
state then holds exp_avg = (1 − β₁)·g·c (c the clipping factor, from the logged norm), which
gives back Ember's gradient g. PyTorch (`GPT2LMHeadModel` on the exported weights) computes
the gradient of the same batch (Ember's first window draw, see curve.py). Reported per
parameter: relative difference ‖g_ember − g_torch‖ / ‖g_torch‖, and the global norm each side
computes against the float64 one.

    cargo build --bin ember
    ~/.cache/ember-peers/bin/python benches/pretrain/grads.py [--medium]
"""
import argparse, json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import curve  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medium", action="store_true", help="6L/6H/384d, context 256, vocabulary 8192")
    a = ap.parse_args()
    import numpy as np, torch, torch.nn.functional as F
    from safetensors.numpy import load_file
    from transformers import GPT2LMHeadModel
    c = curve.SHAPES["medium" if a.medium else "nano"]
    with tempfile.TemporaryDirectory() as work:
        tok, data = curve.prepare(work, c, a.medium)
        init, hf = curve.initial_weights(work, c, tok)
        run, cfg = os.path.join(work, "run"), os.path.join(work, "run.toml")
        with open(cfg, "w") as f:
            f.write(f'[run]\nout_dir = "{run}"\n[init]\ncheckpoint = "{init}"\n[data]\ndir = "{data}"\n[train]\n'
                    f'batch_size = {c["B"]}\nmax_steps = 1\nwarmup_steps = 1\nbeta1 = 0.9\ngrad_clip = 1.0\nseed = {curve.SEED}\n'
                    'eval_every = 0\nsave_every = 1\nlog_every = 1\n')
        curve.ember(["pretrain", "--device", "cpu", "--config", cfg])
        row = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"train"' in l][0]
        norm = row["grad_norm"]
        clip = 1.0 / (norm + 1e-6) if norm > 1.0 else 1.0
        state = load_file(os.path.join(run, "checkpoints", "step-00000001", "optimizer.safetensors"))
        ember_g = {k[len("exp_avg."):]: v.astype(np.float64) / 0.1 / clip for k, v in state.items() if k.startswith("exp_avg.")}
        model = GPT2LMHeadModel.from_pretrained(hf, attn_implementation="sdpa", torch_dtype=torch.float32)
        shard = json.load(open(os.path.join(data, "meta.json")))["splits"]["train"]["shards"][0]["file"]
        train = np.memmap(os.path.join(data, shard), dtype=np.uint16, mode="r", offset=64)
        w = torch.from_numpy(np.stack([train[i:i + c["T"] + 1].astype(np.int64) for i in curve.window_starts(0, len(train), c["B"], c["T"])]))
        V = model.config.vocab_size
        loss = F.cross_entropy(model(input_ids=w[:, :-1]).logits.reshape(-1, V), w[:, 1:].reshape(-1))
        loss.backward()
        torch_g = {n: p.grad.numpy().astype(np.float64).reshape(-1) for n, p in model.named_parameters()}
        exact = sum(float((g ** 2).sum()) for g in torch_g.values()) ** 0.5
        torch_fp32 = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    rels = {}
    for name, g in ember_g.items():
        t = torch_g["transformer." + name.replace(".gamma", ".weight").replace(".beta", ".bias")]
        rels[name] = float(np.linalg.norm(g - t) / np.linalg.norm(t))
    worst = max(rels, key=rels.get)
    print(f"{'medium' if a.medium else 'nano'}: loss Ember {row['loss']:.7f}, PyTorch {loss.item():.7f}")
    print(f"relative gradient difference per parameter ({len(rels)}): median {np.median(list(rels.values())):.1e}, "
          f"largest {rels[worst]:.1e} ({worst})")
    print(f"global norm: float64 {exact:.7f}; Ember {norm:.7f} ({abs(norm - exact) / exact:.1e} off); "
          f"PyTorch fp32 {torch_fp32:.7f} ({abs(torch_fp32 - exact) / exact:.1e} off)")


if __name__ == "__main__":
    main()
