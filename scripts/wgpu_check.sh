#!/usr/bin/env bash
# The wgpu path, checked without a GPU: installs Mesa's lavapipe (a CPU Vulkan driver, Debian
# `mesa-vulkan-drivers`) when no Vulkan driver is present, then runs tests/wgpu.rs (LeNet-5
# training steps, a ResNet-18 forward and an LSTM forward on `--device wgpu` against the CPU)
# under `--features wgpu`. `.ci/run` calls it after the main tests.
#
# Where no Vulkan driver can be had (no root, no apt-get), it prints "SKIPPED" and why, and
# exits 0: the check did not run, and says so. Set DEEPNET_REQUIRE_WGPU=1 to make that an error.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deepnet-target}"

have_driver() { ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && ldconfig -p | grep -q libvulkan.so.1; }

skip() {
    echo "wgpu check SKIPPED: $1" >&2
    if [ "${DEEPNET_REQUIRE_WGPU:-0}" = 1 ]; then exit 1; fi
    exit 0
}

if ! have_driver; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        skip "no Vulkan driver, and no root apt-get to install Mesa's lavapipe (mesa-vulkan-drivers)"
    fi
    echo "installing Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1)" >&2
    if ! { apt-get install -y -q --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 \
            && apt-get install -y -q --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1; }; }; then
        skip "apt-get could not install mesa-vulkan-drivers"
    fi
    have_driver || skip "mesa-vulkan-drivers installed, but no Vulkan driver manifest was found"
fi
# One test at a time: lavapipe's threads share the 2 cores with the CPU side's.
cargo test --release --features wgpu --test wgpu -- --test-threads 1
