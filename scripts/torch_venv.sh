#!/usr/bin/env bash
# Makes (once) and names the PyTorch virtualenv that fixture generators and benchmarks use:
# outside the repo, reused between runs; PyTorch is never a dependency of deepnet itself.
# Usage: PY=$(scripts/torch_venv.sh)   (DEEPNET_BENCH_VENV overrides the location)
set -euo pipefail
VENV="${DEEPNET_BENCH_VENV:-$HOME/.cache/deepnet-bench-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, numpy, safetensors" 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q torch numpy safetensors >&2
fi
echo "$VENV/bin/python"
