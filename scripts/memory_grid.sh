#!/usr/bin/env bash
# The long-term-dependency grid of docs/memory-bench/ end to end: installs Fashion-MNIST if it is
# missing, builds deepnet, then trains every configuration for 3,000 Adam steps (hidden 128) and
# merges the invocations into one table, learning curves and gradient-through-time pictures.
#
# Per-cell settings are those chosen on validation data at T = 200 (docs/memory-bench/README.md):
# tanh RNN and IRNN at lr 1e-3 with and without clipping at 1, LSTM at lr 2e-2 with clipping at 1,
# GRU at lr 3e-3. The copy problem and pixel-sequential Fashion-MNIST (20,000 training images)
# run every cell at the defaults (lr 1e-3, batch 32), tanh and IRNN on copy also clipped.
# Each invocation's console output goes to $OUT/<name>.txt; run again with the same OUT, the
# script skips the invocations that finished (their console output ends with the results line)
# and redoes the others.
# Usage: scripts/memory_grid.sh [OUT, default runs/memory-grid-<date>]
#   DEEPNET_BIN=path: use this deepnet binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(scripts/install_fashion_mnist.sh)
OUT="${1:-runs/memory-grid-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
if [ -n "${DEEPNET_BIN:-}" ]; then
  BIN=$DEEPNET_BIN
else
  cargo build --release
  BIN="${CARGO_TARGET_DIR:-target}/release/deepnet"
fi
bench() { # NAME ARGS...
  local name=$1
  shift
  if grep -q "^results: " "$OUT/$name.txt" 2>/dev/null; then
    echo "== $name: done before, skipped"
    return
  fi
  echo "== $name: deepnet memory-bench $* --out $OUT/$name" | tee "$OUT/$name.txt"
  /usr/bin/time -f "%e s wall" "$BIN" memory-bench "$@" --data "$DATA" --out "$OUT/$name" 2>&1 \
    | tee -a "$OUT/$name.txt"
}
bench adding-rnn --problem adding --length 50,100,200,400 --cells tanh,irnn --clip none,1
bench adding-lstm --problem adding --length 50,100,200,400 --cells lstm --lr 2e-2 --clip 1
bench adding-gru --problem adding --length 50,100,200,400 --cells gru --lr 3e-3
bench pixel --problem pixel-fmnist --cells tanh,irnn,lstm,gru --train-images 20000
bench copy --problem copy --length 50,100,200 --cells tanh,irnn,lstm,gru
bench copy-clip --problem copy --length 50,100,200 --cells tanh,irnn --clip 1
"$BIN" memory-bench --out "$OUT/all" --combine \
  "$OUT/adding-rnn,$OUT/adding-lstm,$OUT/adding-gru,$OUT/pixel,$OUT/copy,$OUT/copy-clip" \
  | tee "$OUT/all.txt"
