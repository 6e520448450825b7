#!/usr/bin/env python3
"""Runs examples/speed_gate (see bench/speed_gate.sh), prints its ratios as a table and writes
them to bench/results/speed_gate-DATE.json. Each row is one process: interleaved pairs of
deepnet's ops and burn's, the median of the per-pair ratios (burn's time / deepnet's)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("DEEPNET_SPEED_GATE",
                     os.path.join(ROOT, "target", "release", "examples", "speed_gate"))


def main():
    pairs = sys.argv[1] if len(sys.argv) > 1 else "7"
    out = subprocess.run([BIN, pairs], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(f"speed gate ratios, {pairs} pairs, {results.machine()['cpu_model']}\n")
    print("| configuration | workload | burn's ops / deepnet's (median) | gate minimum | per pair |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['workload']} | {r['median_ratio']:.2f}x | {r['min_ratio']:.2f}x "
              f"{'pass' if r['passes'] else 'FAIL'} | {', '.join(f'{x:.2f}' for x in r['ratios'])} |")
    summary = {f"{r['config']}: {r['workload']}": {"median_ratio": r["median_ratio"],
                                                  "passes": r["passes"]} for r in rows}
    results.write("speed_gate", rows, summary, {"config": {"pairs": int(pairs)}})


if __name__ == "__main__":
    main()
