#!/usr/bin/env bash
# Recurrent training-step benchmark: deepnet vs PyTorch (CPU, 2 threads) vs burn's built-in
# Lstm/Gru. Makes the PyTorch virtualenv (outside the repo), builds the timing example, runs
# bench/rnn_train.py. Usage: bench/rnn_train.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
cargo build --release --example rnn_step
DEEPNET_BENCH_COMMAND="bench/rnn_train.sh ${1:-3}" TORCH_PYTHON="$PY" DEEPNET_RNN_STEP="${CARGO_TARGET_DIR:-target}/release/examples/rnn_step" \
  python3 bench/rnn_train.py "${1:-3}"
