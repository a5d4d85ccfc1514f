#!/usr/bin/env bash
# The one-hour English chat model, end to end: gutenberg-small's tokenizer and recipe with
# conversations mixed into 30% of the pretraining rows (mid-training), fine-tuned on the
# training conversations with a reply-ranking term, then evaluated on held-out Topical-Chat and
# ChatterBot conversations (every 20th): reply ranking, context gain, replies ending with
# <|end|>, beside the books' held-out bits per byte and BLiMP. About 90 minutes on 2 CPU cores
# after the build (pretraining 45-60 of them with bf16 products, fine-tuning ~15-25, evaluation
# with the full BLiMP set ~10; benches/RESULTS.md, "Dialogue (English)").
#   bash scripts/chat.sh [DATA_DIR]   # DATA_DIR (../shared/data) holds gutenberg_en_*.txt,
#                                     # sft/*_en.jsonl and eval/ (the full BLiMP set)
set -euo pipefail
cd "$(dirname "$0")/.."
# EMBER_BIN: a built binary to run instead of `cargo run` (so edits made meanwhile do not rebuild it).
ember() { if [ -n "${EMBER_BIN:-}" ]; then "$EMBER_BIN" "$@"; else cargo run --quiet --bin ember -- "$@"; fi; }
D="${1:-../shared/data}"
G=runs/gutenberg
R=runs/chat
T=$R/text
mkdir -p $T

# 1. Conversations: every 20th Topical-Chat and ChatterBot conversation held out.
for set in topicalchat_en chatterbot_en selfinstruct_human_en; do
  awk -v train=$T/$set.train.jsonl -v held=$T/$set.held.jsonl \
    '{ if (NR % 20 == 0) print > held; else print > train }' "$D/sft/$set.jsonl"
done
cat $T/topicalchat_en.held.jsonl $T/chatterbot_en.held.jsonl > $T/dialogue.held.jsonl
# 2. Tokenizer and book shards: gutenberg-small's (made here when missing).
if [ ! -f $G/tokenizer.json ]; then
  ember tokenizer train --input "$D/gutenberg_en_train.txt" --vocab-size 8192 --out $G/tokenizer.json
fi
if [ ! -f $G/data/meta.json ]; then
  ember prepare --tokenizer $G/tokenizer.json --input "$D/gutenberg_en_train.txt" \
    --val-input "$D/gutenberg_en_valid.txt" --doc-separator '\n\n\n\n' --out $G/data
fi
# 3. The training conversations rendered with the chat template, as token shards.
ember prepare --dialogue --tokenizer $G/tokenizer.json --input $T/topicalchat_en.train.jsonl \
  $T/chatterbot_en.train.jsonl $T/selfinstruct_human_en.train.jsonl \
  --val-input $T/dialogue.held.jsonl --out $R/dialogue --force
# 4. Pretraining with the conversations mixed in, about an hour.
ember pretrain --config configs/chat-pretrain.toml --force
# 5. Fine-tuning on the training conversations, a few minutes.
ember sft --config configs/chat-sft.toml --force
for q in "Hello! How are you today?" "Do you like music?" "What is your favourite book?"; do
  echo "you> $q"
  printf 'ember> '
  ember chat --checkpoint $R/sft --message "$q" --max-new-tokens 60 --seed 1
done
# 6. Evaluation of the base and the fine-tuned model on the held-out books and conversations.
ember eval --checkpoint $R/pretrain --checkpoint $R/sft \
  --tasks text,dialogue-choice,context-gain,blimp --text "$D/gutenberg_en_valid.txt" \
  --dialogue $T/dialogue.held.jsonl --eval-data "$D/eval" --out $R/results.json
ember eval --checkpoint $R/sft --tasks samples --samples 6 --prompt "Hello! How are you today?" \
  --prompt "Do you like music?" --prompt "What did you do this weekend?" --out $R/samples-chat.json
echo "runs: $R/pretrain and $R/sft (metrics.jsonl, loss.svg); evaluation: $R/results.json, samples: $R/samples-chat.json"
