#!/usr/bin/env python3
"""Makes crates/tokenizer/tests/fixtures/hf_parity.json: token ids produced by Hugging Face
`tokenizers` for a tokenizer.json that Ember trained, so the Rust test suite can check that
Ember encodes exactly as Hugging Face does (and that training and the file format have not
drifted: the fixture records the file's SHA-256).

Run from the repository root, with `tokenizers` installed (see benches/README.md):
    cargo build --bin ember
    python3 benches/tokenizer/make_hf_fixture.py
"""
import hashlib, json, os, subprocess, sys, tempfile

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMBER = os.environ.get("EMBER_BIN", os.path.join(ROOT, "target", "debug", "ember"))
OUT = os.path.join(ROOT, "crates", "tokenizer", "tests", "fixtures", "hf_parity.json")
TRAIN = {"input": "data/tinyshakespeare.txt", "vocab_size": 1024}

CASES = [
    ("Hello, world! It's a test.\n\nNew paragraph   with  spaces\tand tabs.", False),
    ("ROMEO:\nBut, soft! what light through yonder window breaks?\n", False),
    ("I'll they've we're don't HE'S 'twas O'er 'LL", False),
    ("In 1984, 3.14159 and 1234567 people; ²³ ½ Ⅻ.", False),
    ("   leading and trailing   ", False),
    ("\r\n\r\nwindows lines\r\n  \n\t\n", False),
    ("x \n \n y  \n\n\n   z", False),
    ("却说那女娲氏炼石补天之时，于大荒山无稽崖炼成高经十二丈。", False),
    ("\u3000\u3000全角空格 a\u00a0b\u2003c", False),
    ("naïve café 🙂👍🏽 日本語テキスト e\u0301 नमस्ते", False),
    ("control \x00\x01\x7f bytes \u0085 next", False),
    ("!!!???...--- ((()))\n\n", False),
    ("<|endoftext|>First doc.<|endoftext|>Second <|user|>hi<|end|><|assistant|>hello<|end|>", True),
]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokenizer.json")
        subprocess.run([EMBER, "tokenizer", "train", "--input", os.path.join(ROOT, TRAIN["input"]),
                        "--vocab-size", str(TRAIN["vocab_size"]), "--out", path], check=True)
        raw = open(path, "rb").read()
        tok = Tokenizer.from_file(path)
    cases = [{"text": t, "specials": s, "ids": tok.encode(t, add_special_tokens=False).ids} for t, s in CASES]
    fixture = {
        "about": "ids from Hugging Face tokenizers for the tokenizer Ember trains with `training`; made by benches/tokenizer/make_hf_fixture.py",
        "tokenizers_version": tokenizers.__version__,
        "training": TRAIN,
        "tokenizer_sha256": hashlib.sha256(raw).hexdigest(),
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
