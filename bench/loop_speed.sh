#!/usr/bin/env bash
# The training loop against an earlier commit's: builds BASE_COMMIT (default fec8f12, the parent
# of the task-general loop) in a temporary git worktree with the same cargo target directory (so
# only deepnet itself is compiled), keeps its binary aside, builds the current tree again (which
# the worktree's build overwrote: see below; other bench scripts run after this one build their
# own binaries from this tree, so they are not affected), then runs
# bench/loop_speed.py. Needs Fashion-MNIST (apt-get install dataset-fashion-mnist, or
# DEEPNET_DATA=DIR).
# Usage: [DEEPNET_LOOP_WORKLOADS=lenet5-1998] bench/loop_speed.sh [ROUNDS] [BASE_COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
BASE="${2:-fec8f12}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
WT=$(mktemp -d)
git worktree add --detach "$WT" "$BASE" >/dev/null
trap 'git worktree remove --force "$WT"; rm -f "$WT.bin"' EXIT
(cd "$WT" && cargo build --release)
cp "$CARGO_TARGET_DIR/release/deepnet" "$WT.bin"
# Cargo names a workspace's own crates by their path inside the workspace, so the worktree's
# build of the base replaced this tree's deepnet library and binary in the shared target
# directory, with files newer than this tree's sources: cargo would take them as up to date and
# "build" the current binary as the base's. Touching the sources makes it compile them again.
touch src/lib.rs src/main.rs
cargo build --release
if cmp -s "$CARGO_TARGET_DIR/release/deepnet" "$WT.bin"; then
  echo "loop_speed.sh: the current binary is the base's; refusing to compare a binary with itself" >&2
  exit 1
fi
DEEPNET_BENCH_COMMAND="${DEEPNET_LOOP_WORKLOADS:+DEEPNET_LOOP_WORKLOADS=$DEEPNET_LOOP_WORKLOADS }bench/loop_speed.sh $ROUNDS $BASE" \
  DEEPNET_BIN="$CARGO_TARGET_DIR/release/deepnet" DEEPNET_BASE_BIN="$WT.bin" \
  DEEPNET_BASE_COMMIT="$BASE" python3 bench/loop_speed.py "$ROUNDS"
