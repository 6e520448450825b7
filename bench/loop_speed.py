#!/usr/bin/env python3
"""Training-loop speed against an earlier deepnet: the same `deepnet train` run with two binaries.

Shows that a change to the training loop (not to the kernels) costs no speed: each round runs
one epoch of LeNet-5 (20,000 Fashion-MNIST images, batch 64) and one of ResNet-20 (2,560
images, batch 128) with the earlier binary and with the current one, interleaved, and reads the
training throughput each wrote in its run directory. The ratio current / earlier is taken per
round; the table gives the median of those ratios. Writes bench/results/loop_speed-DATE.json
(CPU model and flags, date, command, every round).

Usage: bench/loop_speed.sh [ROUNDS] [BASE_COMMIT]
(DEEPNET_LOOP_WORKLOADS=lenet5-1998 times the 1998 form instead of the default two workloads.)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DEEPNET_DATA", "/usr/share/datasets/fashion-mnist")
NEW, OLD = os.environ["DEEPNET_BIN"], os.environ["DEEPNET_BASE_BIN"]
BASE = os.environ.get("DEEPNET_BASE_COMMIT", "?")
WORKLOADS = {
    "lenet5": ["lenet5", "--limit-train", "21000", "--val-size", "1000", "--batch-size", "64"],
    "resnet20": ["resnet20", "--limit-train", "2816", "--val-size", "256", "--batch-size", "128",
                 "--optimizer", "sgd", "--lr", "0.1"],
    # Not in the default set: for a kernel change to the 1998 form (scaled tanh).
    "lenet5-1998": ["lenet5-1998", "--limit-train", "21000", "--val-size", "1000", "--batch-size",
                    "64"],
}
# DEEPNET_LOOP_WORKLOADS=a,b picks workloads by name (default: lenet5,resnet20).
SELECTED = os.environ.get("DEEPNET_LOOP_WORKLOADS", "lenet5,resnet20").split(",")


def throughput(binary, args):
    out = tempfile.mkdtemp(prefix="loop-speed-")
    try:
        subprocess.run([binary, "train", *args, "--data", DATA, "--epochs", "1",
                        "--schedule", "constant", "--out", out],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            m = json.loads(f.readline())
        return m.get("throughput", m.get("images_per_second"))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    per_round, summary = [], {}
    unknown = [w for w in SELECTED if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    for name in SELECTED:
        args = WORKLOADS[name]
        base, current = [], []
        for r in range(rounds):
            base.append(throughput(OLD, args))
            current.append(throughput(NEW, args))
            per_round.append({"workload": name, "round": r + 1, "base": base[-1],
                              "current": current[-1], "ratio": current[-1] / base[-1]})
            print(f"{name} round {r + 1}: base {base[-1]:.0f}, current {current[-1]:.0f} images/s, "
                  f"ratio {current[-1] / base[-1]:.3f}", flush=True)
        med, ratios = results.median_ratio(current, base)
        summary[name] = {"args": args, "median_ratio": med, "min_ratio": min(ratios),
                         "max_ratio": max(ratios), "median_base": statistics.median(base),
                         "median_current": statistics.median(current)}
    print("| workload | base (images/s) | current (images/s) | current / base, median of rounds (min-max) |")
    print("|---|---|---|---|")
    for name, w in summary.items():
        print(f"| {name} | {w['median_base']:.0f} | {w['median_current']:.0f} | "
              f"{w['median_ratio']:.3f} ({w['min_ratio']:.3f}-{w['max_ratio']:.3f}) |")
    results.write("loop_speed", per_round, summary,
                  {"base_commit": BASE, "unit": "images/s (training throughput of one epoch)"})


if __name__ == "__main__":
    main()
