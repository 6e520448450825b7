#!/usr/bin/env bash
# Image captioning end to end: installs Fashion-MNIST if missing, builds deepnet, trains the
# encoder (ResNet-20 on all ten Fashion-MNIST classes, 2 epochs), then the soft-attention
# captioner and the Show-and-Tell baseline side by side on the same scenes (settings of
# docs/caption-scenes/), and captions three test scenes with the attention run.
# Usage: scripts/caption_job.sh [extra `deepnet caption-train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_fashion_mnist.sh
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/deepnet"
STAMP="$(date +%Y%m%d-%H%M%S)"
ENC="runs/caption-encoder-resnet20-$STAMP"
"$BIN" train resnet20 --epochs 2 --batch-size 128 --optimizer sgd --lr 0.1 --momentum 0.9 \
  --weight-decay 5e-4 --schedule cosine --augment flip-shift --seed 42 --out "$ENC"
"$BIN" caption-train --encoder "$ENC" --epochs 12 --attention additive --out "runs/caption-attention-$STAMP" "$@" \
  > "runs/caption-attention-$STAMP.log" 2>&1 &
ATT=$!
"$BIN" caption-train --encoder "$ENC" --epochs 12 --attention none --out "runs/caption-show-tell-$STAMP" "$@" \
  > "runs/caption-show-tell-$STAMP.log" 2>&1 &
NONE=$!
wait "$ATT"
wait "$NONE"
cat "runs/caption-attention-$STAMP.log" "runs/caption-show-tell-$STAMP.log" | tr '\r' '\n' | grep -v '^\s*$'
S="runs/caption-attention-$STAMP/report/scenes"
"$BIN" caption "runs/caption-attention-$STAMP" "$S/test-0.png" "$S/test-1.png" "$S/test-2.png" \
  --attention-dir "runs/caption-attention-$STAMP/report"
