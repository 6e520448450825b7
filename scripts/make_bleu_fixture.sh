#!/usr/bin/env bash
# Regenerates tests/fixtures/bleu/bleu.json (sacrebleu's corpus BLEU of a fixed set of captions).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(scripts/torch_venv.sh)
"$PY" -c "import sacrebleu" 2>/dev/null || "$PY" -m pip install -q sacrebleu==2.5.1 >&2
"$PY" scripts/make_bleu_fixture.py
