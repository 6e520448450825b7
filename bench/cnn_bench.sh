#!/usr/bin/env bash
# CNN zoo speed: ResNet-18 inference and ResNet-20 training, deepnet vs PyTorch (CPU, 2 threads).
# Makes the PyTorch virtualenv (outside the repo, with torchvision), builds the timing example,
# runs bench/cnn_bench.py. Usage: bench/cnn_bench.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
"$PY" -c "import torchvision, onnx, onnxruntime" 2>/dev/null || "${PY%/python}/pip" install -q torchvision onnx onnxruntime
cargo build --release --example cnn_step
DEEPNET_BENCH_COMMAND="bench/cnn_bench.sh ${1:-3}" TORCH_PYTHON="$PY" DEEPNET_CNN_STEP="${CARGO_TARGET_DIR:-target}/release/examples/cnn_step" \
  python3 bench/cnn_bench.py "${1:-3}"
