#!/usr/bin/env bash
# The checks and tests, as CI runs them (`.ci/run`): what a reviewer checks first —
# `cargo fmt --check`, `cargo clippy --all-targets --features wgpu -- -D warnings` and
# `cargo doc --no-deps --features wgpu` with warnings as errors — then
# `cargo test --release --features wgpu`, one build in which every test runs, the GPU path's
# among them (tests/wgpu.rs: LeNet-5 training steps, a ResNet-18 forward and an LSTM forward
# on `Device::wgpu` against the CPU), and a short round of the fuzzers (tests/fuzz.rs).
#
# Without a GPU the wgpu tests run on Mesa's lavapipe, a CPU Vulkan driver (Debian
# `mesa-vulkan-drivers`), installed here with apt-get when no Vulkan driver is present. Where
# none can be had (no root, no apt-get), the wgpu tests are left out with `--skip wgpu_` and
# the script says SKIPPED: they did not run, and are not counted as passed. Set
# DEEPNET_REQUIRE_WGPU=1 to make that an error instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deepnet-target}"

have_driver() {
    compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null \
        || return 1
    ldconfig -p | grep libvulkan.so.1 >/dev/null
}

install_lavapipe() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    echo "installing Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1) for the wgpu tests" >&2
    local pkgs="mesa-vulkan-drivers libvulkan1"
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $pkgs >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 \
            && apt-get install -y -q --no-install-recommends $pkgs >/dev/null 2>&1; }
}

# rustup's default profile has rustfmt and clippy; a minimal one may not, and then they are
# added if rustup can reach its server. A check whose tool cannot be had is not passed: the
# script says SKIPPED (an error with DEEPNET_REQUIRE_LINTS=1).
if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
lint() { # TOOL COMMAND...
    local tool=$1
    shift
    if cargo "$tool" --version >/dev/null 2>&1; then
        "$@"
    else
        echo "cargo $tool SKIPPED: the $tool component is not installed" >&2
        [ "${DEEPNET_REQUIRE_LINTS:-0}" != 1 ]
    fi
}
lint fmt cargo fmt --check
lint clippy cargo clippy --all-targets --features wgpu -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features wgpu

skip=()
if ! have_driver && ! { install_lavapipe && have_driver; }; then
    echo "wgpu tests SKIPPED: no Vulkan driver, and Mesa's lavapipe (mesa-vulkan-drivers) could not be installed" >&2
    [ "${DEEPNET_REQUIRE_WGPU:-0}" = 1 ] && exit 1
    skip=(--skip wgpu_)
fi
# burn's default device (where it loads a resumed optimizer state, see src/main.rs): the CPU,
# as the deepnet binary sets it, so the library's resume tests need no GPU.
export BURN_DEVICE="${BURN_DEVICE:-flex}"
cargo test --release --features wgpu -- "${skip[@]}"
