#!/usr/bin/env bash
# Installs Debian's fortune databases in nine languages (fortunes, fortunes-de, -es, -it, -pl,
# -ru, -cs, -br, -bg) with apt-get when any is missing: the corpus of `deepnet langid-train` and
# `deepnet lm-train` (/usr/share/games/fortunes, read through assets/fortunes-manifest.json).
set -euo pipefail
PACKAGES="fortunes fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-ru fortunes-cs fortunes-br fortunes-bg"
MISSING=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || MISSING="$MISSING $p"
done
if [ -n "$MISSING" ]; then
  echo "installing the fortune databases:$MISSING" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $MISSING
fi
