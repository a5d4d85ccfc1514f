#!/usr/bin/env bash
# Two builds of `ember` side by side: alternating rounds of `ember bench` on the nano and
# medium shapes (training step and KV-cache generation), one line per build and round.
#   bash benches/model/ab_builds.sh OLD_EMBER NEW_EMBER [ROUNDS]
# Build each commit with `cargo run --bin ember -- --version` and copy the binary first.
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['step_ms'],1), round(d['gen_tokens_per_s']))"; }
echo "round build nano_step_ms nano_gen_tok_s medium_step_ms medium_gen_tok_s"
for r in $(seq "$rounds"); do
  for v in "$a" "$b"; do
    n=$("$v" bench --shape nano --steps 20 --warmup 3 --json --device cpu 2>/dev/null | field)
    m=$("$v" bench --shape medium --steps 5 --warmup 2 --gen-tokens 64 --json --device cpu 2>/dev/null | field)
    echo "$r $v $n $m"
  done
done
