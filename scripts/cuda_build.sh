#!/usr/bin/env bash
# Builds deepnet with burn's CUDA backend (`--features cuda`) without the download its build
# script would make. cubecl-cuda compiles kernels with LLVM's NVPTX back end, linked statically
# through cubecl-llvm; the build script of tracel-llvm-bundler (its build dependency) downloads
# tracel's LLVM 23 bundle from GitHub unless its install directory,
# ${XDG_DATA_HOME:-~/.local/share}/tracel/tracel-llvm-23.1.0-4, already holds a file
# `.tracel-llvm-installed`. cubecl-llvm's build script then asks `<that dir>/bin/llvm-config
# --link-static` for the include dir, the lib dir, the libraries and the system libraries.
#
# PyPI's mlc-llvm-static 23.1.1.post0 plus its extra-targets wheel (the `[all]` extra, which
# brings NVPTX) is a static LLVM 23 with exactly that layout: bin/llvm-config (a Python >= 3.10
# script), include/, lib/libLLVM*.a, and lib/libz.a, lib/libzstd.a, which the `-lz -lzstd` of
# `--system-libs` resolve to because the lib dir comes first on the link line. The wheels are
# fetched once with pip (60 + 32 MB) into ~/.cache/deepnet-llvm and unpacked there (396 MB).
# After that no network is needed (besides crates.io for crates not yet in ~/.cargo).
#
# The build goes to its own target dir, ${DEEPNET_CUDA_TARGET:-~/.cache/deepnet-cuda-target}
# (an inherited CARGO_TARGET_DIR is ignored on purpose: bench/gpu_prepare.sh exports the default
# build's), so the CPU/wgpu build's artifacts are not rebuilt with cuda on and back.
# It takes no lock: on a shared machine run it as `flock /tmp/deepnet-cpu.lock scripts/cuda_build.sh`.
#
# Usage: scripts/cuda_build.sh [CARGO BUILD ARGS...]   (default: --bin deepnet)
# Run time: libcuda.so comes from the NVIDIA driver (loaded by cudarc when a device opens);
# kernels that call exp/tanh also need libdevice.10.bc: set CUDA_PATH to a CUDA toolkit (or the
# nvidia-cuda-nvcc wheel's nvidia/cuda_nvcc) holding nvvm/libdevice/. See docs/gpu/cuda-build.md.
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=23.1.0-4          # tracel-llvm-bundler's version, in Cargo.lock; names the install dir
VERSION=23.1.1.post0     # mlc-llvm-static wheels standing in for it (same LLVM major)
export CARGO_TARGET_DIR="${DEEPNET_CUDA_TARGET:-$HOME/.cache/deepnet-cuda-target}"
cache="$HOME/.cache/deepnet-llvm"
llvm="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-$BUNDLE"

locked=$(awk '/^name = "tracel-llvm-bundler"/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if [ -n "$locked" ] && [ "$locked" != "$BUNDLE" ]; then
    echo "cuda_build: Cargo.lock has tracel-llvm-bundler $locked, this script knows $BUNDLE;" \
        "update BUNDLE/VERSION (the wheel's LLVM major must match)" >&2
    exit 1
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "cuda_build: the wheel's llvm-config needs python3 >= 3.10" >&2; exit 1; }

if [ ! -e "$llvm/.tracel-llvm-installed" ]; then
    mkdir -p "$cache" "$(dirname "$llvm")"
    for pkg in mlc-llvm-static mlc-llvm-static-extra-targets; do
        if ! ls "$cache/${pkg//-/_}-$VERSION-"*.whl >/dev/null 2>&1; then
            python3 -m pip download -q --no-deps --only-binary=:all: \
                --platform manylinux_2_28_x86_64 "$pkg==$VERSION" -d "$cache"
        fi
    done
    # Unpacked next to the final place, moved in whole: an interrupted run leaves no half
    # directory that the bundler would take for installed.
    unpack=$(mktemp -d "$(dirname "$llvm")/.unpack.XXXXXX")
    trap 'rm -rf "$unpack"' EXIT
    for wheel in "$cache"/mlc_llvm_static*-"$VERSION"-*.whl; do
        python3 -m zipfile -e "$wheel" "$unpack"
    done
    sdk="$unpack/mlc_llvm_static/static"
    chmod +x "$sdk"/bin/*
    "$sdk/bin/llvm-config" --version | grep -q '^23\.' \
        || { echo "cuda_build: the wheel's LLVM is not 23.x" >&2; exit 1; }
    "$sdk/bin/llvm-config" --targets-built | grep -qw NVPTX \
        || { echo "cuda_build: the unpacked LLVM has no NVPTX target (extra-targets wheel missing?)" >&2; exit 1; }
    touch "$sdk/.tracel-llvm-installed"
    rm -rf "$llvm"
    mv "$sdk" "$llvm"
fi

if [ $# -eq 0 ]; then set -- --bin deepnet; fi
echo "cuda_build: LLVM $("$llvm/bin/llvm-config" --version) in $llvm; target dir $CARGO_TARGET_DIR" >&2
cargo build --release --features cuda "$@"
