#!/usr/bin/env bash
# The character language model end to end: installs Debian's fortune databases if missing,
# builds deepnet, trains a 2-layer LSTM on the English fortunes with truncated BPTT with the
# settings of docs/char-lm-fortunes/ (the Kneser-Ney 5-gram baseline is scored in the same run),
# then writes 300 characters with the trained model.
# Usage: scripts/char_lm_job.sh [extra `deepnet lm-train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_fortunes.sh
OUT="runs/char-lm-$(date +%Y%m%d-%H%M%S)"
cargo run --release -- lm-train --epochs 12 --dropout 0.2 --out "$OUT" "$@"
cargo run --release -- generate "$OUT" --prompt "The " --length 300 --temperature 0.8 --seed 1
