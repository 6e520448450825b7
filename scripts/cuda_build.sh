#!/usr/bin/env bash
# Builds deepnet with burn's CUDA backend (`--features cuda`) without the network access its
# build wants. cubecl-cuda compiles kernels with LLVM's NVPTX back end, linked statically; the
# build script of its dependency tracel-llvm-bundler downloads tracel's LLVM 23 bundle unless
# its install directory, ${XDG_DATA_HOME:-~/.local/share}/tracel/tracel-llvm-23.1.0-4, holds a
# file `.tracel-llvm-installed`. PyPI's mlc-llvm-static 23.1.1 (with its extra-targets wheel for
# NVPTX) is the same LLVM major version, statically built, with a `bin/llvm-config`: unpacked
# there, it stands in for the bundle. The two wheels are fetched once with pip (92 MB) into
# ~/.cache/deepnet-llvm.
#
# Usage: scripts/cuda_build.sh [CARGO BUILD ARGS...]   (default: --bin deepnet)
# At run time CUDA kernels that call exp/tanh need libdevice.10.bc: point CUDA_PATH at a CUDA
# toolkit (or the nvidia-cuda-nvcc wheel) holding nvvm/libdevice/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deepnet-target}"
VERSION=23.1.1.post0
cache="$HOME/.cache/deepnet-llvm"
llvm="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"

if [ ! -e "$llvm/.tracel-llvm-installed" ]; then
    mkdir -p "$cache"
    for pkg in mlc-llvm-static mlc-llvm-static-extra-targets; do
        wheel=$(ls "$cache"/"${pkg//-/_}"-"$VERSION"-*.whl 2>/dev/null | head -1 || true)
        if [ -z "$wheel" ]; then
            python3 -m pip download -q --no-deps --only-binary=:all: "$pkg==$VERSION" -d "$cache"
        fi
    done
    unpack=$(mktemp -d)
    for wheel in "$cache"/mlc_llvm_static*-"$VERSION"-*.whl; do
        python3 -m zipfile -e "$wheel" "$unpack"
    done
    rm -rf "$llvm"
    mkdir -p "$(dirname "$llvm")"
    mv "$unpack/mlc_llvm_static/static" "$llvm"
    rm -rf "$unpack"
    chmod +x "$llvm"/bin/*
    "$llvm/bin/llvm-config" --targets-built | grep -qw NVPTX \
        || { echo "cuda_build: the LLVM in $llvm has no NVPTX target" >&2; exit 1; }
    touch "$llvm/.tracel-llvm-installed"
fi

if [ $# -eq 0 ]; then set -- --bin deepnet; fi
cargo build --release --features cuda "$@"
