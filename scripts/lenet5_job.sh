#!/usr/bin/env bash
# The main job: installs Fashion-MNIST if it is missing (Debian's dataset-fashion-mnist), builds
# deepnet and trains LeNet-5 on it for 10 epochs, then prints where the report is.
# Usage: scripts/lenet5_job.sh [extra `deepnet train` arguments, e.g. --epochs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed; installing Debian's dataset-fashion-mnist..." >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q dataset-fashion-mnist
fi
OUT="runs/lenet5-$(date +%Y%m%d-%H%M%S)"
cargo run --release -- train lenet5 --data "$DATA" --epochs 10 --out "$OUT" "$@"
echo "report: $OUT/report/training_curve.png, $OUT/report/confusion_matrix.png, $OUT/report/test_report.json"
