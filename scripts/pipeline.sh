#!/usr/bin/env bash
# Ember's main job: the whole pipeline on the bundled corpus, on the GPU if there is one
# (--device auto), else the CPU. Each stage is one `ember` command; run them yourself to vary.
set -euo pipefail
cd "$(dirname "$0")/.."
ember() { cargo run --quiet --bin ember -- "$@"; }
R=runs/shakespeare-char

# 1. Tokenizer: byte level with no merges (261 ids), i.e. characters for this ASCII text.
ember tokenizer train --input data/tinyshakespeare.txt --vocab-size 261 --out $R/tokenizer.json --force
# 2. Token shards: the last 10% of the text is held out, as nanoGPT does.
ember prepare --tokenizer $R/tokenizer.json --input data/tinyshakespeare.txt --val-fraction 0.1 --out $R/data --force
# 3. Pretraining: nanoGPT's shakespeare-char CPU config (2000 steps; about 6 minutes on 2 cores).
ember pretrain --config configs/shakespeare-char.toml --force
# 4. Generation from the newest checkpoint of the run.
ember generate --checkpoint $R/run --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --seed 1
echo
echo "metrics: $R/run/metrics.jsonl, loss curve: $R/run/loss.svg"
