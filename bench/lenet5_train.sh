#!/usr/bin/env bash
# Side-by-side LeNet-5 training benchmark, deepnet vs PyTorch on CPU (2 threads).
# Makes its own PyTorch virtualenv (outside the repo, reused between runs), builds deepnet in
# release mode, then runs bench/lenet5_train.py. Needs Fashion-MNIST: apt-get install
# dataset-fashion-mnist (or DEEPNET_DATA=DIR for any MNIST-format directory).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
cargo build --release
DEEPNET_BENCH_COMMAND="bench/lenet5_train.sh ${1:-3}" TORCH_PYTHON="$PY" DEEPNET_BIN="${CARGO_TARGET_DIR:-target}/release/deepnet" \
  python3 bench/lenet5_train.py "${1:-3}"
