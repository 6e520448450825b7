#!/usr/bin/env bash
# GPU speed, on a machine with an NVIDIA GPU and no network, from what bench/gpu_prepare.sh put
# in .gpu/: the CPU-vs-GPU checks (tests/wgpu.rs on the real GPU), then bench/gpu_bench.py
# (ResNet-18 inference and training, LeNet-5 training: deepnet on wgpu and cuda against
# PyTorch CUDA on the same GPU, and against deepnet on the same machine's CPU). The python3 on
# the PATH must hold PyTorch with CUDA. Results: bench/results/gpu_bench-DATE.json, copied to
# $OUT when that is set (the device tool's output folder).
#
# Usage: bench/gpu.sh [ROUNDS]      (about 5 minutes with 3 rounds, autotuning included)
set -uo pipefail
cd "$(dirname "$0")/.."
# The binaries travel xz-compressed; unpacked outside the repository.
G=/tmp/deepnet-gpu
mkdir -p "$G"
for f in .gpu/*.xz; do
    [ -e "$f" ] || continue
    out="$G/$(basename "${f%.xz}")"
    xz -dc "$f" > "$out" 2>/dev/null || python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$f" > "$out"
    chmod +x "$out"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# The Vulkan loader and the GL vendor-neutral libraries NVIDIA's Vulkan driver loads
# (Debian's, unpacked over /), and NVIDIA's Vulkan driver manifest.
for f in .gpu/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -e "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
done
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -e "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
echo "Vulkan driver: ${VK_DRIVER_FILES:-none found}"
# libdevice for the CUDA backend's exp/tanh.
for d in /usr/local/cuda /usr/local/cuda-*; do
    if [ -e "$d/nvvm/libdevice/libdevice.10.bc" ]; then export CUDA_PATH="$d"; break; fi
done

# A first step on each GPU backend; one that cannot start is left out of the benchmark.
bins=""
for backend in wgpu cuda; do
    b="$G/cnn_step-$backend"
    [ -x "$b" ] || continue
    if timeout 120 "$b" lenet5 train 64 3 "$backend" 2>/tmp/smoke-$backend.log; then
        bins="${bins:+$bins,}$backend=$b"
    else
        echo "$backend: cannot run, left out:"; grep -v XDG_RUNTIME /tmp/smoke-$backend.log | head -8
        ls -la "${VK_DRIVER_FILES:-/nonexistent}" 2>&1; ldconfig -p | grep -i "vulkan\|GLX_nvidia\|libcuda" | head
    fi
done
if [ -z "$bins" ]; then echo "no GPU backend runs"; exit 1; fi

if [ -x "$G/wgpu_parity" ]; then
    echo "== tests/wgpu.rs on this GPU"
    timeout 180 "$G/wgpu_parity" --test-threads 1 2>&1 | tail -15
fi

echo "== bench/gpu_bench.py"
TORCH_PYTHON="$(command -v python3)" DEEPNET_GPU_BINS="$bins" DEEPNET_BENCH_COMMAND="bench/gpu.sh ${1:-3}" PYTHONUNBUFFERED=1 \
    timeout "${DEEPNET_GPU_BENCH_TIMEOUT:-420}" python3 bench/gpu_bench.py "${1:-3}"
rc=$?
if [ -n "${OUT:-}" ]; then cp bench/results/gpu_bench-*.json "$OUT"/ 2>/dev/null; fi
exit $rc
