#!/usr/bin/env bash
# Streaming `prepare` on corpora larger than memory (benches/RESULTS.md, "Corpora larger than
# memory"): builds 1 GB and 4 GB corpora from the Gutenberg training text (plain text and
# Parquet), trains a tokenizer on 4 GB and prepares each, recording wall time, MB/s and peak RSS
# (GNU time), then deletes the corpora. Needs ~15 GB of free disk, pyarrow, and a built ember:
#   bash benches/corpus/run.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${1:-/tmp/ember-corpus-bench}"
SRC=../shared/data/gutenberg_en_train.txt
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ember-target}"
# The README's build of the binary (or EMBER_BIN, a binary built before).
[ -n "${EMBER_BIN:-}" ] || cargo run -q --bin ember -- --version >/dev/null
EMBER="${EMBER_BIN:-$CARGO_TARGET_DIR/debug/ember}"
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT
lscpu | grep "Model name"
git rev-parse --short HEAD

measure() { # name, then the command
  local name=$1; shift
  /usr/bin/time -v "$@" > "$W/$name.out" 2> "$W/$name.time" || { cat "$W/$name.out" "$W/$name.time"; exit 1; }
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$W/$name.time" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$W/$name.time" | awk '{print $NF}')
  echo "$name: wall $wall, peak RSS $((rss / 1024)) MiB"
  grep -h "wrote\|trained" "$W/$name.out" "$W/$name.time" | head -2
}

python3 benches/corpus/make_corpus.py "$SRC" "$W/c1g" 1
python3 benches/corpus/make_corpus.py "$SRC" "$W/c4g" 4
python3 benches/corpus/make_corpus.py "$SRC" "$W/p4g" 4 --parquet
ls -la "$W"

measure tokenizer-4g "$EMBER" tokenizer train --input "$W/c4g.txt" --vocab-size 8192 --out "$W/tok.json"
for c in c1g c4g; do
  measure "prepare-$c" "$EMBER" prepare --tokenizer "$W/tok.json" --input "$W/$c.txt" \
    --doc-separator '\n\n\n\n' --val-fraction 0.01 --out "$W/data-$c"
done
rm -rf "$W/data-c1g" "$W/c1g.txt"
measure prepare-p4g "$EMBER" prepare --tokenizer "$W/tok.json" --input "$W/p4g.parquet" \
  --val-fraction 0.01 --out "$W/data-p4g"
# The Parquet corpus holds the same books as the text one: the shards must be identical.
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
a, b = (json.load(open(f"{w}/data-{n}/meta.json"))["splits"] for n in ("c4g", "p4g"))
print("parquet shards identical to text shards:", a == b)
sys.exit(0 if a == b else 1)
PY
