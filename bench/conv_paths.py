#!/usr/bin/env python3
"""Runs examples/conv_paths (see bench/conv_paths.sh), prints a table and writes
bench/results/conv_paths-DATE.json. One process: per shape, rounds interleave the paths (`winograd`: F(2x2, 3x3) forced where
the convolution is 3x3 with stride 1, the choice by shape elsewhere);
each figure is the median milliseconds over rounds (each round: the median of several runs)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("DEEPNET_CONV_PATHS",
                     os.path.join(ROOT, "target", "release", "examples", "conv_paths"))
PATHS = ["packed", "gemm", "winograd", "shifted", "auto", "burn"]


def main():
    rounds = sys.argv[1] if len(sys.argv) > 1 else "5"
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    shape_filter = sys.argv[2] if len(sys.argv) > 2 else ""
    out = subprocess.run([BIN, rounds, shape_filter], check=True, capture_output=True, text=True, env=env).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(f"conv lowerings, ms (forward + backward where training), {rounds} rounds, "
          f"{results.machine()['cpu_model']}\n")
    print("| convolution | " + " | ".join(PATHS) + " |")
    print("|---" * (len(PATHS) + 1) + "|")
    for r in rows:
        print(f"| {r['shape']} | " + " | ".join(f"{r[p]:.2f}" for p in PATHS) + " |")
    summary = {r["shape"]: {p: r[p] for p in PATHS} for r in rows}
    results.write("conv_paths", rows, summary,
                  {"config": {"rounds": int(rounds), "threads": 2, "filter": shape_filter}})


if __name__ == "__main__":
    main()
