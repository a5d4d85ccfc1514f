#!/usr/bin/env python3
"""Side-by-side tokenizer benchmark: Ember vs Hugging Face `tokenizers`, `rustbpe`, `tiktoken`.

Every side runs in this one invocation, on the same machine and files, interleaved round by
round (A B C, A B C, ...), and the table reports medians and ratios. Writes the Markdown table
to stdout (and to --out), ready for benches/RESULTS.md.

    cargo build --bin ember
    python3 benches/tokenizer/bench.py --out /tmp/tokenizer_bench.md

Peers come from PyPI (see benches/README.md). Timing notes:
- Training time is wall time of the whole `ember tokenizer train` process (reading, counting,
  merging, writing the file); for the Python peers it is the time of the training call alone
  (interpreter start and imports excluded), which favours the peers.
- Peak memory is the process's maximum resident set size (Python's own ~10 MB included).
- Encoding time excludes reading the file; the best of --repeat runs is kept for each side.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("EMBER_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
EMBER = os.environ.get("EMBER_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "ember"))
PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS MB, stdout)."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    line = [l for l in out.stderr.splitlines() if l.startswith("TIME ")][-1].split()
    return float(line[1]), int(line[2]) / 1024, out.stdout


# ---- peer side: run as `bench.py peer KIND ...` in a fresh process so memory is its own ----

def peer_train_hf(path, vocab, out):
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t0 = time.perf_counter()
    tok.train([path], trainer)
    dt = time.perf_counter() - t0
    tok.save(out)
    return dt


def peer_train_rustbpe(path, vocab, out):
    import rustbpe
    def lines():
        with open(path, encoding="utf-8") as f:
            yield from f
    tok = rustbpe.Tokenizer()
    t0 = time.perf_counter()
    tok.train_from_iterator(lines(), vocab - len(SPECIALS), pattern=PATTERN)  # same merge count as ours
    dt = time.perf_counter() - t0
    ranks = {k.hex(): v for k, v in tok.get_mergeable_ranks()}
    json.dump(ranks, open(out, "w"))
    return dt


def tiktoken_from_ranks(ranks, name):
    import tiktoken
    specials = {s: len(ranks) + i for i, s in enumerate(SPECIALS)}
    return tiktoken.Encoding(name=name, pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def ranks_of_ember(path):
    """Ember's tokenizer.json as tiktoken ranks (id = rank; bytes 0-255 are ids 0-255)."""
    doc = json.load(open(path, encoding="utf-8"))
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    to_byte = {chr(c): b for b, c in zip(bs, cs)}
    return {bytes(to_byte[ch] for ch in tok): i for tok, i in doc["model"]["vocab"].items()}


def chunks(text, size=64 * 1024):
    """Line-aligned chunks of about `size` bytes (the same rule as `ember tokenizer stats`)."""
    out, start, b = [], 0, text.encode("utf-8")
    while start < len(b):
        end = min(start + size, len(b))
        while end < len(b) and (b[end] & 0xC0) == 0x80:
            end += 1
        nl = b.find(b"\n", end)
        end = len(b) if nl < 0 else nl + 1
        out.append(b[start:end].decode("utf-8"))
        start = end
    return out


def best_of(repeat, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peer_encode(kind, tok_path, text_path, threads, repeat):
    text = open(text_path, encoding="utf-8").read()
    parts = chunks(text)
    if kind == "tiktoken":
        enc = tiktoken_from_ranks(ranks_of_ember(tok_path), "ember")
        fn = (lambda: enc.encode_ordinary(text)) if threads == 1 else \
             (lambda: [i for ids in enc.encode_ordinary_batch(parts, num_threads=threads) for i in ids])
    else:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(tok_path)
        fn = (lambda: tok.encode(text, add_special_tokens=False).ids) if threads == 1 else \
             (lambda: [i for e in tok.encode_batch(parts, add_special_tokens=False) for i in e.ids])
    dt, ids = best_of(repeat, fn)
    return {"seconds": dt, "mb_per_s": len(text.encode()) / dt / 1e6, "ids": ids}


def peer_main(argv):
    kind = argv[0]
    if kind in ("train-hf", "train-rustbpe"):
        fn = peer_train_hf if kind == "train-hf" else peer_train_rustbpe
        print(json.dumps({"seconds": fn(argv[1], int(argv[2]), argv[3])}))
    elif kind == "encode":
        r = peer_encode(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
        if len(argv) > 6:
            json.dump(r["ids"], open(argv[6], "w"))
        print(json.dumps({"seconds": r["seconds"], "mb_per_s": r["mb_per_s"], "tokens": len(r["ids"])}))
    elif kind == "count":  # bytes per token of a trained peer tokenizer on a file
        tok_path, text_path, family = argv[1], argv[2], argv[3]
        text = open(text_path, encoding="utf-8").read()
        if family == "hf":
            from tokenizers import Tokenizer
            n = len(Tokenizer.from_file(tok_path).encode(text, add_special_tokens=False).ids)
        else:
            ranks = {bytes.fromhex(k): v for k, v in json.load(open(tok_path)).items()}
            n = len(tiktoken_from_ranks(ranks, "rustbpe").encode_ordinary(text))
        print(json.dumps({"bytes_per_token": len(text.encode()) / n}))


# ---- driver ----

def py(*args, env=None):
    return timed([sys.executable, os.path.abspath(__file__), "peer", *map(str, args)], env=env)


def ember_stats(tok, text, threads, repeat):
    _, _, out = timed([EMBER, "tokenizer", "stats", "--tokenizer", tok, "--input", text,
                       "--threads", str(threads), "--repeat", str(repeat), "--json"])
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved training rounds per vocab size")
    ap.add_argument("--repeat", type=int, default=5, help="encoding runs per side (best kept)")
    ap.add_argument("--vocab", type=int, nargs="+", default=[8192, 32768])
    ap.add_argument("--train", default=os.path.join(SHARED, "gutenberg_en_train.txt"))
    ap.add_argument("--out", help="also write the Markdown here")
    a = ap.parse_args()
    valid, zh = os.path.join(SHARED, "gutenberg_en_valid.txt"), os.path.join(SHARED, "zh_hongloumeng.txt")
    for p in (a.train, valid, zh, EMBER):
        if not os.path.exists(p):
            sys.exit(f"missing {p} (build with `cargo build --bin ember`; shared data under {SHARED})")
    tmp = tempfile.mkdtemp(prefix="ember-bench-")
    md = [f"Machine: {os.cpu_count()} cores; training corpus {os.path.basename(a.train)} "
          f"({os.path.getsize(a.train) / 1e6:.1f} MB); {a.rounds} interleaved rounds, medians.\n"]

    md.append("### Training (time, peak memory)\n")
    md.append("| vocab | Ember | HF tokenizers | rustbpe | HF / Ember | rustbpe / Ember |")
    md.append("|---|---|---|---|---|---|")
    comp = {}
    for v in a.vocab:
        res = {"ember": [], "hf": [], "rustbpe": []}
        paths = {k: os.path.join(tmp, f"{k}-{v}.json") for k in res}
        for _ in range(a.rounds):
            wall, rss, _ = timed([EMBER, "tokenizer", "train", "--input", a.train, "--vocab-size", str(v),
                                  "--out", paths["ember"], "--force"])
            res["ember"].append((wall, rss))
            for k in ("hf", "rustbpe"):
                _, rss, out = py(f"train-{k}", a.train, v, paths[k])
                res[k].append((json.loads(out)["seconds"], rss))
        med = {k: (statistics.median(t for t, _ in r), max(m for _, m in r)) for k, r in res.items()}
        cell = lambda k: f"{med[k][0]:.2f} s, {med[k][1]:.0f} MB"
        md.append(f"| {v} | {cell('ember')} | {cell('hf')} | {cell('rustbpe')} | "
                  f"{med['hf'][0] / med['ember'][0]:.1f}× | {med['rustbpe'][0] / med['ember'][0]:.1f}× |")
        for name, path in (("English held-out", valid), ("Chinese 红楼梦", zh)):
            e = ember_stats(paths["ember"], path, 1, 1)["bytes_per_token"]
            h = json.loads(py("count", paths["hf"], path, "hf")[2])["bytes_per_token"]
            r = json.loads(py("count", paths["rustbpe"], path, "rustbpe")[2])["bytes_per_token"]
            comp[(v, name)] = (e, h, r)
        if v == a.vocab[0]:
            enc_tok = paths["ember"]

    md.append("\n### Compression (bytes per token, higher is better; each tool's own trained tokenizer)\n")
    md.append("| vocab | text | Ember | HF tokenizers | rustbpe | Ember vs HF |")
    md.append("|---|---|---|---|---|---|")
    for (v, name), (e, h, r) in comp.items():
        md.append(f"| {v} | {name} | {e:.3f} | {h:.3f} | {r:.3f} | {100 * (e / h - 1):+.2f}% |")

    md.append(f"\n### Encoding throughput (MB/s, best of {a.repeat}; Ember's {a.vocab[0]}-id tokenizer for every tool)\n")
    md.append("| text | threads | Ember | tiktoken | HF tokenizers | Ember / tiktoken | Ember / HF | ids equal to HF |")
    md.append("|---|---|---|---|---|---|---|---|")
    for name, path in (("English held-out", valid), ("Chinese 红楼梦", zh)):
        for threads in (1, 2):
            e = ember_stats(enc_tok, path, threads, a.repeat)
            hf_ids = os.path.join(tmp, "hf_ids.json")
            t = json.loads(py("encode", "tiktoken", enc_tok, path, threads, a.repeat)[2])
            h = json.loads(py("encode", "hf", enc_tok, path, threads, a.repeat, hf_ids)[2])
            _, _, ours = timed([EMBER, "tokenizer", "encode", "--tokenizer", enc_tok, "--input", path]) if threads == 1 else (0, 0, None)
            same = "yes" if ours is not None and list(map(int, ours.split())) == json.load(open(hf_ids)) else ("n/a (chunked)" if ours is None else "NO")
            md.append(f"| {name} | {threads} | {e['mb_per_s']:.1f} | {t['mb_per_s']:.1f} | {h['mb_per_s']:.1f} | "
                      f"{e['mb_per_s'] / t['mb_per_s']:.1f}× | {e['mb_per_s'] / h['mb_per_s']:.1f}× | {same} |")
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        open(a.out, "w", encoding="utf-8").write(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        peer_main(sys.argv[2:])
    else:
        main()
