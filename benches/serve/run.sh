#!/usr/bin/env bash
# `ember serve` under concurrent load (benches/RESULTS.md, "Serving"): a model of
# configs/gutenberg-small.toml's shape (4 layers, 256 wide, 256 context, 4096-token vocabulary;
# weights freshly initialised: speed does not depend on training) served with continuous
# batching off (--max-batch 1) and on (--max-batch 8); 200 streamed completions of 64 tokens
# after a prompt of about 100 tokens, sent by 1, 4 and 8 clients at once; then 200 of 128
# tokens after a 13-token prompt (mostly decoding), by 1 and 8 clients; then the same on a
# 27M-parameter model (8 blocks 512 wide) with batching on. With a CHECKPOINT
# (the main job's: runs/pipeline/sft), its time to first token is measured the same way.
# Needs a built ember and python3:
#   bash benches/serve/run.sh [CHECKPOINT]
set -euo pipefail
cd "$(dirname "$0")/../.."
CK="${1:-}"
W=/tmp/ember-serve-bench
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ember-target}"
[ -n "${EMBER_BIN:-}" ] || cargo run -q --bin ember -- --version >/dev/null
EMBER="${EMBER_BIN:-$CARGO_TARGET_DIR/debug/ember}"
mkdir -p "$W"
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$W"' EXIT
lscpu | grep "Model name"
git rev-parse --short HEAD

head -c 430 data/tinyshakespeare.txt > "$W/prompt.txt"
"$EMBER" tokenizer train --input data/tinyshakespeare.txt --vocab-size 4096 --out "$W/tok.json" >/dev/null
"$EMBER" init --tokenizer "$W/tok.json" --preset nano --n-layer 4 --n-head 4 --n-embd 256 \
  --block-size 256 --out "$W/ck" >/dev/null

serve() { # CHECKPOINT ARGS...: starts a server, sets $url
  "$EMBER" serve --checkpoint "$@" --port 0 > "$W/serve.out" 2>/dev/null &
  SERVER=$!
  until grep -q listening "$W/serve.out"; do sleep 0.2; done
  url=$(sed -n 's/^listening on //p' "$W/serve.out")
  until curl -sf "$url/health" >/dev/null; do sleep 0.2; done
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
load() { # REQUESTS MAX_TOKENS PROMPT_FILE|- CLIENTS...: one load.py row per client count
  local total=$1 max=$2 prompt=$3 c
  shift 3
  [ "$prompt" = - ] && prompt= || true
  for c in "$@"; do
    python3 benches/serve/load.py "$url/v1" "$c" "$total" "$max" $prompt
  done
}

for batch in 1 8; do
  serve "$W/ck" --max-batch "$batch"
  echo "--max-batch $batch"
  load 200 64 "$W/prompt.txt" 1 4 8
  load 200 128 - 1 8
  stop
done
# The same load on a model of 27M parameters (8 blocks 512 wide: 105 MB of weights, more than
# the last-level cache of the VMs measured), where a one-row step waits on memory and a batch
# shares each weight read; 48 requests per row.
"$EMBER" init --tokenizer "$W/tok.json" --preset nano --n-layer 8 --n-head 8 --n-embd 512 \
  --block-size 256 --out "$W/ck27" >/dev/null
serve "$W/ck27" --max-batch 8
echo "27M parameters, --max-batch 8"
load 48 64 "$W/prompt.txt" 1 8
load 48 128 - 1 8
stop
if [ -n "$CK" ]; then
  serve "$CK"
  echo "$CK"
  load 200 64 "$W/prompt.txt" 1 8
  stop
fi
