#!/usr/bin/env bash
# Regenerates tests/fixtures/seq2seq/ (PyTorch parity fixtures of the attention decoder and the
# sequence-to-sequence network). Only on purpose: the committed files are what the tests read.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
"$PY" scripts/make_seq2seq_fixtures.py
