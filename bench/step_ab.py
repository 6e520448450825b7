#!/usr/bin/env python3
"""One training or inference step, two deepnet builds: did a kernel change slow a workload down?

Runs `examples/cnn_step` and `examples/rnn_step` of an earlier build (BASE) and of the current
one, interleaved, and takes the ratio base / current of the milliseconds per step in each
round (above 1: the current build is faster); the summary is the median of those ratios.
PyTorch is not involved, so a machine that is slower in one run than in another (these swing
by 20-30%) does not show up as a change of deepnet's. Writes bench/results/step_ab-DATE.json.

Usage: DEEPNET_BASE_CNN_STEP=PATH DEEPNET_BASE_RNN_STEP=PATH DEEPNET_BASE_COMMIT=REV \\
       [DEEPNET_CNN_STEP=PATH DEEPNET_RNN_STEP=PATH] python3 bench/step_ab.py [ROUNDS]
(the current binaries default to $CARGO_TARGET_DIR/release/examples/).
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CURRENT = {"cnn": os.environ.get("DEEPNET_CNN_STEP", os.path.join(TARGET, "release", "examples", "cnn_step")),
           "rnn": os.environ.get("DEEPNET_RNN_STEP", os.path.join(TARGET, "release", "examples", "rnn_step"))}
BASE = {"cnn": os.environ["DEEPNET_BASE_CNN_STEP"], "rnn": os.environ["DEEPNET_BASE_RNN_STEP"]}
WORKLOADS = {
    "resnet20 train b128": ("cnn", ["resnet20", "train", "128", "4"], "ms"),
    "resnet18 infer b16": ("cnn", ["resnet18", "infer", "16", "4"], "ms"),
    "resnet18 infer b1": ("cnn", ["resnet18", "infer", "1", "20"], "ms"),
    "lstm h256 train": ("rnn", ["lstm", "fused", "256", "20"], "ms_per_step"),
    "lstm h64 train": ("rnn", ["lstm", "fused", "64", "40"], "ms_per_step"),
    "gru h256 train": ("rnn", ["gru", "fused", "256", "20"], "ms_per_step"),
    "gru h64 train": ("rnn", ["gru", "fused", "64", "40"], "ms_per_step"),
}


def step_ms(binary, args, key):
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])[key]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    per_round, summary = [], {}
    for name, (kind, args, key) in WORKLOADS.items():
        base, current = [], []
        for r in range(rounds):
            base.append(step_ms(BASE[kind], args, key))
            current.append(step_ms(CURRENT[kind], args, key))
            per_round.append({"workload": name, "round": r + 1, "base_ms": base[-1],
                              "current_ms": current[-1], "speed_ratio": base[-1] / current[-1]})
            print(f"{name} round {r + 1}: base {base[-1]:.1f} ms, current {current[-1]:.1f} ms", flush=True)
        med, ratios = results.median_ratio(base, current)
        summary[name] = {"median_speed_ratio": med, "per_round": ratios,
                         "median_base_ms": statistics.median(base),
                         "median_current_ms": statistics.median(current)}
    print("| workload | base ms | current ms | base / current, median of rounds (per round) |")
    print("|---|---|---|---|")
    for name, w in summary.items():
        rs = ", ".join(f"{x:.2f}" for x in w["per_round"])
        print(f"| {name} | {w['median_base_ms']:.1f} | {w['median_current_ms']:.1f} | "
              f"{w['median_speed_ratio']:.2f}x ({rs}) |")
    results.write("step_ab", per_round, summary,
                  {"base_commit": os.environ.get("DEEPNET_BASE_COMMIT", "?")})


if __name__ == "__main__":
    main()
