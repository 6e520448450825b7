#!/usr/bin/env bash
# Installs Fashion-MNIST (Debian's dataset-fashion-mnist) if it is missing and prints its
# directory. Used by the job scripts; needs root or sudo to install.
set -euo pipefail
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed; installing Debian's dataset-fashion-mnist..." >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q dataset-fashion-mnist >&2
fi
echo "$DATA"
