#!/usr/bin/env bash
# Ember's main job: the whole pipeline on the bundled data, on the GPU if there is one
# (--device auto), else the CPU. Each stage is one `ember` command; run them yourself to vary.
set -euo pipefail
cd "$(dirname "$0")/.."
ember() { cargo run --quiet --bin ember -- "$@"; }
R=runs/pipeline

# 1. Tokenizer: byte-level BPE, 2048 ids, trained on the Shakespeare text and the messages of the
#    conversations mixed in below (merges for the words of a chat, not only Shakespeare's).
ember tokenizer train --input data/tinyshakespeare.txt --dialogue data/topicalchat_en.jsonl data/selfinstruct_human_en.jsonl --vocab-size 2048 --out $R/tokenizer.json --force
# 2. Token shards: the last 10% of the text is held out.
ember prepare --tokenizer $R/tokenizer.json --input data/tinyshakespeare.txt --val-fraction 0.1 --out $R/data --force
# 2b. ChatterBot's conversations split once, for every stage: every 20th held out (never trained
#     on; the evaluation's replies), the rest trained on in mid-training and fine-tuning.
awk -v train=$R/chatterbot.train.jsonl -v held=$R/chatterbot.held.jsonl \
  '{ if (NR % 20 == 0) print > held; else print > train }' data/chatterbot_en.jsonl
# 2c. Dialogue shards for mid-training: Topical-Chat, Self-Instruct and ChatterBot's training
#     conversations rendered with the chat template (2% held out); the pretraining config mixes
#     them into half of the rows.
ember prepare --dialogue --tokenizer $R/tokenizer.json --input data/topicalchat_en.jsonl data/selfinstruct_human_en.jsonl $R/chatterbot.train.jsonl --val-fraction 0.02 --out $R/dialogue --force
# 3. Pretraining (about 6 minutes on 2 CPU cores): metrics.jsonl, loss.svg, checkpoints.
ember pretrain --config configs/pipeline-pretrain.toml --force
ember generate --checkpoint $R/pretrain --prompt "ROMEO:" --max-new-tokens 120 --seed 1
# 4. Fine-tuning on ChatterBot's training conversations with a reply-ranking term (each reply
#    against replies of other conversations; about 1½ minutes).
ember sft --config configs/pipeline-sft.toml --force
# 5. A short chat with the fine-tuned model, sampled at temperature 0.3: a model this small
#    answers "What is your favorite book?" with "The Beatles and the Billo." at 0.3 where
#    0.8 (the chat's default) gives a string of half-words.
for q in "Hello, how are you?" "What is your favorite book?" "Do you like music?" "What is your name?"; do
  echo "you> $q"
  printf 'ember> '
  ember chat --checkpoint $R/sft --message "$q" --max-new-tokens 60 --seed 1 --temperature 0.3
done
echo
# 6. Evaluation of every SFT checkpoint: held-out bits per byte, assistant loss, reply ranking
#    (dialogue-choice, chance 25%) and context gain on the held-out ChatterBot conversations, zero-shot
#    benchmarks on the bundled slices (data/eval-mini; point --eval-data at the full sets for
#    real figures) and samples; results.json plus an HTML/Markdown report.
ember eval --run $R/sft --tasks text,sft-loss,dialogue-choice,context-gain,hellaswag,arc-easy,blimp,samples --eval-data data/eval-mini --samples 3 --dialogue $R/chatterbot.held.jsonl
echo
echo "runs: $R/pretrain and $R/sft (metrics.jsonl, loss.svg, checkpoints/, report.html); sampled replies: $R/sft/replies.jsonl"
echo "report: $R/sft/report.html (open it in a browser; $R/sft/report.md is the Markdown version)"
