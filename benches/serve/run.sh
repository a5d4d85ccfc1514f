#!/usr/bin/env bash
# `ember serve` under concurrent load (benches/RESULTS.md, "Serving"): a model of
# configs/gutenberg-small.toml's shape (4 layers, 256 wide, 256 context, 4096-token vocabulary;
# weights freshly initialised: speed does not depend on training) served with continuous
# batching off (--max-batch 1) and on (--max-batch 8), 1, 2, 4 and 8 clients each sending 8
# completions of 128 tokens. Needs a built ember and python3:
#   bash benches/serve/run.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${1:-/tmp/ember-serve-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ember-target}"
[ -n "${EMBER_BIN:-}" ] || cargo run -q --bin ember -- --version >/dev/null
EMBER="${EMBER_BIN:-$CARGO_TARGET_DIR/debug/ember}"
mkdir -p "$W"
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$W"' EXIT
lscpu | grep "Model name"
git rev-parse --short HEAD

"$EMBER" tokenizer train --input data/tinyshakespeare.txt --vocab-size 4096 --out "$W/tok.json" >/dev/null
"$EMBER" init --tokenizer "$W/tok.json" --preset nano --n-layer 4 --n-head 4 --n-embd 256 \
  --block-size 256 --out "$W/ck" >/dev/null

for batch in 1 8; do
  "$EMBER" serve --checkpoint "$W/ck" --port 0 --max-batch "$batch" > "$W/serve.out" 2>/dev/null &
  SERVER=$!
  until grep -q listening "$W/serve.out"; do sleep 0.2; done
  url=$(sed -n 's/^listening on //p' "$W/serve.out")
  until curl -sf "$url/health" >/dev/null; do sleep 0.2; done
  echo "--max-batch $batch"
  for c in 1 2 4 8; do
    python3 benches/serve/load.py "$url/v1" "$c" 8 128
  done
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
done
