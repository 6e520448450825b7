#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for bench/gpu.sh, which runs offline on a GPU machine:
# - cnn_step-wgpu: examples/cnn_step built with `--features wgpu`, stripped;
# - cnn_step-cuda: the same with `--features cuda`, where scripts/cuda_build.sh can build it;
# - wgpu_parity: tests/wgpu.rs built with `--features wgpu`, stripped (the CPU-vs-GPU checks);
# - gl/: the Vulkan loader and the GL vendor-neutral libraries (Debian's libvulkan1, libglvnd0,
#   libegl1, libgl1, libglx0, libgles2, libopengl0), which NVIDIA's Vulkan driver needs and a GPU
#   image with only the driver may lack.
# Binaries are xz-compressed (wgpu: 94 MB stripped, 17 MB compressed; cuda: 177 MB and 38 MB,
# LLVM inside): under 64 MiB in all with the working tree.
# Usage: bench/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deepnet-target}"
mkdir -p .gpu/gl

cargo build --release --features wgpu --example cnn_step
strip -o .gpu/cnn_step-wgpu "$CARGO_TARGET_DIR/release/examples/cnn_step"

test_bin=$(cargo test --release --features wgpu --test wgpu --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "wgpu":
        print(m["executable"])')
strip -o .gpu/wgpu_parity "$test_bin"

if [ "${DEEPNET_GPU_CUDA:-1}" = 1 ]; then
    cuda_target="${DEEPNET_CUDA_TARGET:-$HOME/.cache/deepnet-cuda-target}"
    if scripts/cuda_build.sh --example cnn_step; then
        strip -o .gpu/cnn_step-cuda "$cuda_target/release/examples/cnn_step"
    else
        echo "no cuda build (see docs/gpu/cuda-build.md); wgpu only" >&2
        rm -f .gpu/cnn_step-cuda
    fi
fi

(cd .gpu/gl && rm -f ./*.deb && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
for b in .gpu/cnn_step-wgpu .gpu/cnn_step-cuda .gpu/wgpu_parity; do
    if [ -f "$b" ]; then xz -T2 -6 -f "$b"; fi
done
# The working tree travels too (about 8 MB): with a CUDA binary (38 MB compressed) the parity
# tests no longer fit in 64 MiB, and are left out (they ran on an H200, docs/gpu/README.md).
total=$(du -sm .gpu | cut -f1)
if [ "$total" -gt 54 ] && [ -e .gpu/wgpu_parity.xz ]; then
    echo "gpu_prepare: .gpu is ${total} MB; leaving out wgpu_parity to stay under 64 MiB" >&2
    rm .gpu/wgpu_parity.xz
fi
du -sh .gpu/* .gpu/gl/*
