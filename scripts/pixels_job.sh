#!/usr/bin/env bash
# Pixels and time end to end: installs Fashion-MNIST if missing, builds deepnet, then
#  - video prediction on Moving Fashion-MNIST: the ConvLSTM encoder-forecaster and the FC-LSTM,
#    each scored against "repeat the last frame" on the same 1,000 test sequences;
#  - semantic segmentation of overlapping scenes: FCN-32s, then FCN-16s grown from it, then
#    FCN-8s grown from 16s (the paper's stage-by-stage training);
#  - recurrent instance segmentation against connected components of FCN-8s's foreground.
# Settings are those of docs/forecast-moving/, docs/segment-scenes/ and docs/instances-scenes/.
# Usage: scripts/pixels_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_fashion_mnist.sh
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/deepnet"
STAMP="$(date +%Y%m%d-%H%M%S)"
R="runs/pixels-$STAMP"
mkdir -p "$R"
SEQ=(--train-sequences 4000 --valid-sequences 300 --test-sequences 1000 --checkpoint-every 100)
"$BIN" forecast-train --model conv-lstm --hidden 32 --layers 2 --epochs 5 "${SEQ[@]}" \
  --out "$R/convlstm" > "$R/convlstm.log" 2>&1 &
CONV=$!
"$BIN" segment-train --variant fcn32s --epochs 8 --out "$R/fcn32s" > "$R/fcn32s.log" 2>&1
"$BIN" segment-train --variant fcn16s --init-from "$R/fcn32s" --epochs 4 --lr 3e-4 \
  --out "$R/fcn16s" > "$R/fcn16s.log" 2>&1
"$BIN" segment-train --variant fcn8s --init-from "$R/fcn16s" --epochs 4 --lr 3e-4 \
  --out "$R/fcn8s" > "$R/fcn8s.log" 2>&1
wait "$CONV"
"$BIN" instance-train --baseline-fcn "$R/fcn8s" --train-scenes 10000 --epochs 10 \
  --out "$R/instances" > "$R/instances.log" 2>&1 &
INST=$!
"$BIN" forecast-train --model fc-lstm --hidden 512 --layers 2 --epochs 5 "${SEQ[@]}" \
  --out "$R/fclstm" > "$R/fclstm.log" 2>&1
wait "$INST"
for f in convlstm fclstm fcn32s fcn16s fcn8s instances; do
  echo "== $f"; tr '\r' '\n' < "$R/$f.log" | grep -v '^\s*$'
done
