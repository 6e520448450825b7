#!/usr/bin/env bash
# Character-LM training step: deepnet vs PyTorch (CPU, 2 threads), same model, batch, window and
# optimizer. Makes the PyTorch virtualenv (outside the repo), builds the timing example, runs
# bench/char_lm_train.py. Usage: bench/char_lm_train.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
cargo build --release --example char_lm_step
DEEPNET_BENCH_COMMAND="bench/char_lm_train.sh ${1:-3}" TORCH_PYTHON="$PY" \
  DEEPNET_CHAR_LM_STEP="${CARGO_TARGET_DIR:-target}/release/examples/char_lm_step" \
  python3 bench/char_lm_train.py "${1:-3}"
