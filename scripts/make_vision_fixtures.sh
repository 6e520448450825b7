#!/usr/bin/env bash
# Regenerates tests/fixtures/vision/ (torchvision parity fixtures of the CNN zoo). Only on
# purpose: the committed files are what the tests read; CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
"$PY" -c "import torchvision" 2>/dev/null || "${PY%/python}/pip" install -q torchvision
"$PY" scripts/make_vision_fixtures.py
