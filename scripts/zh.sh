#!/usr/bin/env bash
# Chinese, end to end: a byte-level BPE tokenizer and a small GPT pretrained on two classical
# novels (红楼梦 and 水浒传; every 20th chapter held out whole), with Chinese conversations
# (KdConv, ChatterBot) mixed in, fine-tuned on those conversations (every 20th held out), then
# evaluated: held-out bits per byte, reply ranking and context gain on the held-out
# conversations, samples from Chinese prompts and a short chat. About 40 minutes on 2 CPU cores
# after the build (pretraining 30 of them; benches/RESULTS.md, "Chinese").
#   bash scripts/zh.sh [DATA_DIR]   # DATA_DIR (../shared/data) holds zh_*.txt, sft/*_zh.jsonl and
#                                   # gutenberg_en_train.txt (the English tokenizer compared)
set -euo pipefail
cd "$(dirname "$0")/.."
# EMBER_BIN: a built binary to run instead of `cargo run` (so edits made meanwhile do not rebuild it).
ember() { if [ -n "${EMBER_BIN:-}" ]; then "$EMBER_BIN" "$@"; else cargo run --quiet --bin ember -- "$@"; fi; }
D="${1:-../shared/data}"
R=runs/zh
T=$R/text
mkdir -p $T

# 1. Text: whole chapters held out (scripts/zh/chapters.awk), conversations every 20th held out.
for novel in hongloumeng shuihuzhuan; do
  awk -v train=$T/$novel.train.txt -v held=$T/$novel.held.txt -f scripts/zh/chapters.awk "$D/zh_$novel.txt"
done
for set in kdconv_zh chatterbot_zh; do
  awk -v train=$T/$set.train.jsonl -v held=$T/$set.held.jsonl \
    '{ if (NR % 20 == 0) print > held; else print > train }' "$D/sft/$set.jsonl"
done
cat $T/kdconv_zh.held.jsonl $T/chatterbot_zh.held.jsonl > $T/dialogue.held.jsonl
cat $T/hongloumeng.held.txt $T/shuihuzhuan.held.txt > $T/novels.held.txt
# 2. Tokenizer: 8192 ids on the training chapters; beside it, for comparison, an English one of
#    the same size (Gutenberg books), both measured on the held-out chapters.
ember tokenizer train --input $T/hongloumeng.train.txt $T/shuihuzhuan.train.txt --vocab-size 8192 \
  --out $R/tokenizer.json --force
ember tokenizer train --input "$D/gutenberg_en_train.txt" --vocab-size 8192 --out $R/tokenizer-en.json --force
ember tokenizer stats --tokenizer $R/tokenizer.json --input $T/novels.held.txt
ember tokenizer stats --tokenizer $R/tokenizer-en.json --input $T/novels.held.txt
# 3. Token shards: the novels, and the training conversations rendered with the chat template.
ember prepare --tokenizer $R/tokenizer.json --input $T/hongloumeng.train.txt $T/shuihuzhuan.train.txt \
  --val-input $T/hongloumeng.held.txt $T/shuihuzhuan.held.txt --out $R/data --force
ember prepare --dialogue --tokenizer $R/tokenizer.json --input $T/kdconv_zh.train.jsonl \
  $T/chatterbot_zh.train.jsonl --val-input $T/dialogue.held.jsonl --out $R/dialogue --force
# 4. Pretraining, about 30 minutes.
ember pretrain --config configs/zh-pretrain.toml --force
ember generate --checkpoint $R/pretrain --prompt "却说宝玉" --max-new-tokens 100 --seed 1
# 5. Fine-tuning on the training conversations, a few minutes.
ember sft --config configs/zh-sft.toml --force
for q in "你好！" "你喜欢看什么电影？"; do
  echo "you> $q"
  printf 'ember> '
  ember chat --checkpoint $R/sft --message "$q" --max-new-tokens 60 --seed 1
done
# 6. Evaluation of the base and the fine-tuned model: held-out chapters (bits per byte), reply
#    ranking (dialogue-choice, chance 25%) and context gain on the held-out conversations; then
#    samples from Chinese prompts (text starts for the base model, messages for the chat model).
ember eval --checkpoint $R/pretrain --checkpoint $R/sft --tasks text,dialogue-choice,context-gain \
  --text $T/novels.held.txt --dialogue $T/dialogue.held.jsonl --out $R/results.json
ember eval --checkpoint $R/pretrain --tasks samples --samples 3 --prompt "却说宝玉" \
  --prompt "话说宋江" --prompt "黛玉笑道：" --out $R/samples-base.json
ember eval --checkpoint $R/sft --tasks samples --samples 3 --prompt "你好！" \
  --prompt "你喜欢看什么电影？" --prompt "你觉得《红楼梦》怎么样？" --out $R/samples-chat.json
echo "runs: $R/pretrain and $R/sft (metrics.jsonl, loss.svg); evaluation: $R/results.json, samples: $R/samples-*.json"
