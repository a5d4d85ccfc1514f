#!/usr/bin/env bash
# Chinese, end to end: a byte-level BPE tokenizer and a small GPT pretrained on two classical
# novels (红楼梦 and 水浒传; every 20th chapter held out whole), with Chinese conversations
# (KdConv, ChatterBot) mixed in, fine-tuned on those conversations (every 20th held out), then
# evaluated: held-out bits per byte, reply ranking and context gain on the held-out
# conversations, samples and a short chat. About 25 minutes on 2 CPU cores after the build
# (pretraining 15 of them; benches/RESULTS.md, "Chinese").
#   bash scripts/zh.sh [DATA_DIR]   # DATA_DIR (../shared/data) holds zh_*.txt, sft/*_zh.jsonl and
#                                   # gutenberg_en_train.txt (the English tokenizer compared)
set -euo pipefail
cd "$(dirname "$0")/.."
ember() { cargo run --quiet --bin ember -- "$@"; }
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
#    ranking (dialogue-choice, chance 25%) and context gain on the held-out conversations,
#    sampled replies.
ember eval --checkpoint $R/pretrain --checkpoint $R/sft --tasks text,dialogue-choice,context-gain,samples \
  --text $T/novels.held.txt --dialogue $T/dialogue.held.jsonl --samples 3 --out $R/results.json
echo "runs: $R/pretrain and $R/sft (metrics.jsonl, loss.svg); evaluation: $R/results.json"
