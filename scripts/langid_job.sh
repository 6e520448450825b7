#!/usr/bin/env bash
# Language identification end to end: installs Debian's fortune databases in nine languages if
# any is missing, builds deepnet, trains the character-level bidirectional LSTM with the settings
# of docs/langid-fortunes/ (about 30 minutes on 2 cores; the naive Bayes baseline is scored in the
# same run), then identifies three sentences with the trained run.
# Usage: scripts/langid_job.sh [extra `deepnet langid-train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_fortunes.sh
OUT="runs/langid-$(date +%Y%m%d-%H%M%S)"
cargo run --release -- langid-train --hidden-size 128 --embed-size 48 --epoch-items 50000 \
  --epochs 22 --out "$OUT" "$@"
cargo run --release -- langid "$OUT" "Das ist nicht mein Hund." "Questo non è il mio cane." "To nie jest mój pies."
