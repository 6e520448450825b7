#!/usr/bin/env python3
"""Recurrent training step: deepnet's LSTM/GRU vs PyTorch (CPU, 2 threads) vs burn's built-in
layers, side by side.

One step = forward over the whole sequence + backward + SGD update, loss = mean(output²), one
layer, sequence 100, batch 32, input 64, hidden 256 and 64, random inputs. Each configuration is
timed in rounds that alternate the three implementations, so that machine noise hits all of them;
each number is the median step time of one process (after two warm-up steps), the table gives the
medians over rounds and the median of the per-round speed ratios (PyTorch time / deepnet time:
above 1 means deepnet is faster). Writes bench/results/rnn_train-DATE.json.

Usage: bench/rnn_train.sh [ROUNDS]   (makes the PyTorch virtualenv, builds the example, runs this)
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_BIN = os.environ.get("DEEPNET_RNN_STEP", os.path.join(ROOT, "target", "release", "examples", "rnn_step"))
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", sys.executable)
SEQ, BATCH, INPUT, THREADS = 100, 32, 64, 2

TORCH_SIDE = r"""
import json, sys, time
import torch
torch.set_num_threads(%(threads)d)
torch.manual_seed(0)
cell, hidden, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layer = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(%(input)d, hidden)
x = torch.randn(%(seq)d, %(batch)d, %(input)d)
opt = torch.optim.SGD(layer.parameters(), lr=0.01)
times = []
for i in range(steps + 2):
    t0 = time.perf_counter()
    out, _ = layer(x)
    loss = out.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i >= 2:
        times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(json.dumps({"ms_per_step": times[len(times) // 2]}))
""" % dict(threads=THREADS, seq=SEQ, batch=BATCH, input=INPUT)


def run_torch(cell, hidden, steps):
    out = subprocess.run([TORCH_PYTHON, "-c", TORCH_SIDE, cell, str(hidden), str(steps)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def run_rust(cell, impl, hidden, steps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([STEP_BIN, cell, impl, str(hidden), str(steps), str(SEQ), str(BATCH), str(INPUT)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    configs = [("lstm", 256), ("gru", 256), ("lstm", 64), ("gru", 64)]
    res_by = {c: {"deepnet": [], "pytorch": [], "burn": []} for c in configs}
    per_round = []
    for r in range(rounds):
        row = {}
        for cell, hidden in configs:
            steps = 10 if hidden >= 256 else 30
            res = res_by[(cell, hidden)]
            res["deepnet"].append(run_rust(cell, "fused", hidden, steps))
            res["pytorch"].append(run_torch(cell, hidden, steps))
            res["burn"].append(run_rust(cell, "burn", hidden, max(3, steps // 3)))
            row[f"{cell} h{hidden}"] = {k: v[-1] for k, v in res.items()}
            print(f"round {r + 1}: {cell} h{hidden}: deepnet {res['deepnet'][-1]:.1f} ms, "
                  f"PyTorch {res['pytorch'][-1]:.1f} ms, burn {res['burn'][-1]:.1f} ms", file=sys.stderr)
        per_round.append(row)
    print(f"\nTraining step (fwd + bwd + SGD), seq {SEQ}, batch {BATCH}, input {INPUT}, "
          f"{THREADS} threads, {rounds} rounds, medians (ms per step); ratios: median of per-round "
          f"ratios; {results.machine()['cpu_model']}\n")
    print("| layer | hidden | deepnet | PyTorch | burn built-in | speed vs PyTorch (per round) | speed vs burn |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for (cell, hidden), res in res_by.items():
        med = {k: statistics.median(v) for k, v in res.items()}
        vs_torch = results.median_ratio(res["pytorch"], res["deepnet"])
        vs_burn = results.median_ratio(res["burn"], res["deepnet"])
        summary[f"{cell} h{hidden}"] = {
            "ms_median": med,
            "speed_vs_pytorch": {"median": vs_torch[0], "per_round": vs_torch[1]},
            "speed_vs_burn": {"median": vs_burn[0], "per_round": vs_burn[1]},
        }
        print(f"| {cell.upper()} | {hidden} | {med['deepnet']:.1f} | {med['pytorch']:.1f} | {med['burn']:.1f} "
              f"| {vs_torch[0]:.2f}x ({', '.join(f'{x:.2f}' for x in vs_torch[1])}) "
              f"| {vs_burn[0]:.2f}x |")
    results.write("rnn_train", per_round, summary,
                  {"config": {"seq": SEQ, "batch": BATCH, "input": INPUT, "threads": THREADS,
                              "rounds": rounds}})


if __name__ == "__main__":
    main()
