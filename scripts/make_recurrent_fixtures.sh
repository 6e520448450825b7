#!/usr/bin/env bash
# Regenerates tests/fixtures/recurrent/ (PyTorch parity fixtures of the recurrent layers).
# Only on purpose: the committed files are what the tests read; CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
"$PY" scripts/make_recurrent_fixtures.py
