#!/usr/bin/env bash
# The main job: installs Fashion-MNIST if it is missing (Debian's dataset-fashion-mnist), builds
# deepnet and trains LeNet-5 on it for 10 epochs, then prints where the report is.
# Usage: scripts/lenet5_job.sh [extra `deepnet train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(scripts/install_fashion_mnist.sh)
OUT="runs/lenet5-$(date +%Y%m%d-%H%M%S)"
cargo run --release -- train lenet5 --data "$DATA" --epochs 10 --out "$OUT" "$@"
echo "report: $OUT/report/training_curve.png, $OUT/report/confusion_matrix.png, $OUT/report/test_report.json"
