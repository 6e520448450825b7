#!/usr/bin/env bash
# The speed gate's ratios (deepnet's ops vs burn's, tests/speed_gate) in every configuration
# its thresholds come from: as shipped, kernels capped at AVX2, and every convolution forced
# onto the packed path (with and without AVX-512). Writes bench/results/speed_gate-DATE.json.
# Usage: bench/speed_gate.sh [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example speed_gate
DEEPNET_BENCH_COMMAND="bench/speed_gate.sh ${1:-7}" \
  DEEPNET_SPEED_GATE="${CARGO_TARGET_DIR:-target}/release/examples/speed_gate" \
  python3 bench/speed_gate.py "${1:-7}"
