#!/usr/bin/env bash
# Per-convolution timings of each lowering of deepnet's conv (packed, gemm, auto = the choice
# by shape) and of burn's conv, forward + backward, for LeNet-5's, ResNet-20's and ResNet-18's
# shapes (examples/conv_paths). Writes bench/results/conv_paths-DATE.json.
# Usage: bench/conv_paths.sh [ROUNDS] [FILTER]   (FILTER: only the shapes whose name contains it)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example conv_paths
DEEPNET_BENCH_COMMAND="bench/conv_paths.sh ${*:-5}" \
  DEEPNET_CONV_PATHS="${CARGO_TARGET_DIR:-target}/release/examples/conv_paths" \
  python3 bench/conv_paths.py "${1:-5}" "${2:-}"
