#!/usr/bin/env bash
# The training loop against an earlier commit's: builds BASE_COMMIT (default fec8f12, the parent
# of the task-general loop) in a temporary git worktree with the same cargo target directory (so
# only deepnet itself is compiled), keeps its binary aside, builds the current tree, then runs
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
cargo build --release
DEEPNET_BENCH_COMMAND="${DEEPNET_LOOP_WORKLOADS:+DEEPNET_LOOP_WORKLOADS=$DEEPNET_LOOP_WORKLOADS }bench/loop_speed.sh $ROUNDS $BASE" \
  DEEPNET_BIN="$CARGO_TARGET_DIR/release/deepnet" DEEPNET_BASE_BIN="$WT.bin" \
  DEEPNET_BASE_COMMIT="$BASE" python3 bench/loop_speed.py "$ROUNDS"
