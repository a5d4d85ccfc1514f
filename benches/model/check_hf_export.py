#!/usr/bin/env python3
"""Checks `ember export --format hf-gpt2` against Hugging Face transformers.

Trains a small tokenizer, makes a nano-shaped checkpoint with `ember init` (random GPT-2
initialisation tests the weight mapping as well as trained weights would), exports it, loads the
export with `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained`, and checks
that (1) the Hugging Face tokenizer gives Ember's ids and (2) greedy generation gives the same
text as `ember generate --temperature 0`.

    cargo build --bin ember
    ~/.cache/ember-peers/bin/python benches/model/check_hf_export.py    # needs torch, transformers
"""
import json, os, subprocess, sys, tempfile

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
EMBER = os.path.join(TARGET, "debug", "ember")


def run(*cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return out.stdout


def main():
    out = tempfile.mkdtemp(prefix="ember-hf-")
    tok, ck, hf = (os.path.join(out, n) for n in ("tokenizer.json", "ck", "hf"))
    run(EMBER, "tokenizer", "train", "--input", os.path.join(ROOT, "data", "tinyshakespeare.txt"), "--vocab-size", "512", "--out", tok)
    run(EMBER, "init", "--tokenizer", tok, "--preset", "nano", "--seed", "3", "--out", ck)
    run(EMBER, "export", "--checkpoint", ck, "--format", "hf-gpt2", "--out", hf)
    model = GPT2LMHeadModel.from_pretrained(hf).eval()
    tok = AutoTokenizer.from_pretrained(hf)
    prompt = "ROMEO: the quick"
    ids = tok(prompt)["input_ids"]
    ember_ids = [int(i) for i in run(EMBER, "tokenizer", "encode", "--tokenizer", os.path.join(ck, "tokenizer.json"), "--text", prompt).split()]
    assert ids == ember_ids, (ids, ember_ids)
    with torch.no_grad():
        greedy = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    hf_text = tok.decode(greedy[0])
    ember_text = run(EMBER, "generate", "--checkpoint", ck, "--prompt", prompt, "--max-new-tokens", "12",
                     "--temperature", "0", "--device", "cpu").rstrip("\n")
    print(json.dumps({"tokenizer_ids_equal": True, "hf_greedy": hf_text, "ember_greedy": ember_text,
                      "greedy_equal": hf_text == ember_text}, indent=1))
    assert hf_text == ember_text, "greedy generations differ"


if __name__ == "__main__":
    main()
