#!/usr/bin/env python3
"""Checks `ember export --format hf-gpt2` against Hugging Face transformers.

Trains the tiny example model (`examples/tiny_gpt.rs`), exports it, loads the export with
`GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained`, and checks that
(1) the tokenizer gives Ember's ids, (2) the logits equal the ones Ember computes (to 1e-4),
(3) greedy generation gives the same text as `ember generate --temperature 0`.

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
    run("cargo", "run", "-q", "-p", "ember-examples", "--example", "tiny_gpt")
    ck = os.path.join(tempfile.gettempdir(), "ember-example-tiny-gpt", "tiny-gpt")
    out = tempfile.mkdtemp(prefix="ember-hf-")
    hf = os.path.join(out, "hf")
    run(EMBER, "export", "--checkpoint", ck, "--format", "hf-gpt2", "--out", hf)
    model = GPT2LMHeadModel.from_pretrained(hf).eval()
    tok = AutoTokenizer.from_pretrained(hf)
    prompt = "the quick"
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
