#!/usr/bin/env python3
"""LeNet-5 training throughput: deepnet vs PyTorch (CPU, 2 threads), side by side.

Both sides train the same modern LeNet-5 (61,706 parameters) for one epoch on the same real
Fashion-MNIST training images (the first 55,000, what deepnet trains on after carving its
5,000-image validation set), batch 64, Adam lr 1e-3. Both keep the data set in memory as the
u8 pixels of the files and convert each batch to normalised float32 (the same representation,
so peak memory compares like with like). PyTorch runs 5 warm-up steps before its clock starts.
Rounds alternate deepnet, deepnet with burn's ops only (DEEPNET_REFERENCE_OPS=1) and PyTorch
(and, with DEEPNET_BASELINE_BIN, another deepnet binary, e.g. an older commit) so that machine
noise hits all; ratios are per round, summarised by their median. Writes
bench/results/lenet5_train-DATE.json.

Usage: bench/lenet5_train.sh [ROUNDS]   (makes the PyTorch virtualenv, builds deepnet, runs this)
"""
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

DATA = os.environ.get("DEEPNET_DATA", "/usr/share/datasets/fashion-mnist")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPNET = os.environ.get("DEEPNET_BIN", os.path.join(ROOT, "target", "release", "deepnet"))
BATCH, N_TRAIN, THREADS = 64, 55000, 2

TORCH_SIDE = r"""
import gzip, json, resource, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(%(threads)d)
torch.manual_seed(42)

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

# u8 pixels in memory, as deepnet keeps them; each batch is converted to normalised float32.
x = torch.from_numpy(idx("%(data)s/train-images-idx3-ubyte.gz")[: %(n)d].copy())
y = torch.from_numpy(idx("%(data)s/train-labels-idx1-ubyte.gz")[: %(n)d].astype(np.int64))

def batch_of(idx_b):
    return ((x[idx_b].float() / 255.0 - 0.2860) / 0.3530).unsqueeze(1), y[idx_b]

class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.conv3 = nn.Conv2d(16, 120, 5)
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x)).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))

model = LeNet5()
assert sum(p.numel() for p in model.parameters()) == 61706
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
def step(xb, yb):
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return logits, loss

# Warm-up steps, not timed (allocator, thread pool, first-call dispatch).
for i in range(5):
    step(*batch_of(torch.arange(i * %(batch)d, (i + 1) * %(batch)d)))
perm = torch.randperm(len(y))
start = time.perf_counter()
seen = 0
correct = 0
for i in range(0, len(y), %(batch)d):
    xb, yb = batch_of(perm[i : i + %(batch)d])
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    # deepnet reads the loss and the hits every step for its progress bar; so does this.
    loss.item()
    correct += (logits.argmax(1) == yb).sum().item()
    seen += len(yb)
secs = time.perf_counter() - start
print(json.dumps({"images_per_second": seen / secs, "seconds": secs, "train_accuracy": correct / seen,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(cmd):
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys, json;"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
               "sys.stderr.write(p.stderr);"
               "print(json.dumps({'rc': p.returncode, 'out': p.stdout,"
               " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"] + cmd
    p = subprocess.run(wrapper, capture_output=True, text=True)
    r = json.loads(p.stdout)
    if r["rc"] != 0:
        sys.exit(f"{cmd[0]} failed:\n{p.stderr[-3000:]}")
    return r["out"], r["rss"]


def deepnet_round(reference_ops=False, binary=DEEPNET):
    os.environ["DEEPNET_REFERENCE_OPS"] = "1" if reference_ops else "0"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        _, rss = measure([binary, "train", "lenet5", "--data", DATA, "--epochs", "1",
                          "--batch-size", str(BATCH), "--optimizer", "adam", "--lr", "1e-3", "--schedule", "constant",
                          "--val-size", "5000", "--out", out])
        with open(os.path.join(out, "metrics.jsonl")) as f:
            m = json.loads(f.readline())
        # metrics.jsonl: `throughput` and a nested `train` object now, `images_per_second` and
        # `train_accuracy` in older binaries (DEEPNET_BASELINE_BIN may be one).
        train = m.get("train") if isinstance(m.get("train"), dict) else {}
        return {"images_per_second": m.get("throughput", m.get("images_per_second")),
                "seconds": m["train_seconds"],
                "train_accuracy": train.get("accuracy", m.get("train_accuracy")), "max_rss_mb": rss}


def torch_round(python):
    script = TORCH_SIDE % {"threads": THREADS, "data": DATA, "n": N_TRAIN, "batch": BATCH}
    out, rss = measure([python, "-c", script])
    r = json.loads(out.strip().splitlines()[-1])
    r["max_rss_mb"] = rss
    return r


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    python = os.environ.get("TORCH_PYTHON", sys.executable)
    baseline = os.environ.get("DEEPNET_BASELINE_BIN")
    env_threads = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
                   "RAYON_NUM_THREADS": str(THREADS)}
    os.environ.update(env_threads)
    sides = {"deepnet": [], "deepnet_burn_ops": [], "pytorch": []}
    if baseline:
        sides["baseline"] = []
    per_round = []
    for r in range(rounds):
        sides["deepnet"].append(deepnet_round())
        sides["deepnet_burn_ops"].append(deepnet_round(reference_ops=True))
        sides["pytorch"].append(torch_round(python))
        if baseline:
            sides["baseline"].append(deepnet_round(binary=baseline))
        row = {k: v[-1] for k, v in sides.items()}
        per_round.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v['images_per_second']:.0f} img/s" for k, v in row.items())
              + f", ratio {row['deepnet']['images_per_second'] / row['pytorch']['images_per_second']:.2f}x",
              file=sys.stderr)
    ips = {k: [x["images_per_second"] for x in v] for k, v in sides.items()}
    rss = {k: [x["max_rss_mb"] for x in v] for k, v in sides.items()}
    med = {k: statistics.median(v) for k, v in ips.items()}
    ratio = {k: results.median_ratio(ips[k], ips["pytorch"]) for k in sides if k != "pytorch"}
    rss_ratio = {k: results.median_ratio(rss[k], rss["pytorch"]) for k in sides if k != "pytorch"}
    own_vs_burn = results.median_ratio(ips["deepnet"], ips["deepnet_burn_ops"])
    summary = {
        "images_per_second_median": med,
        "seconds_median": {k: statistics.median(x["seconds"] for x in v) for k, v in sides.items()},
        "max_rss_mb_median": {k: statistics.median(v) for k, v in rss.items()},
        "ratio_vs_pytorch": {k: {"median": m, "per_round": rs} for k, (m, rs) in ratio.items()},
        "rss_ratio_vs_pytorch": {k: m for k, (m, _) in rss_ratio.items()},
        "deepnet_vs_burn_ops": {"median": own_vs_burn[0], "per_round": own_vs_burn[1]},
    }
    config = {"model": "lenet5", "images": N_TRAIN, "batch": BATCH, "optimizer": "adam 1e-3",
              "threads": THREADS, "rounds": rounds, "baseline_bin": baseline}
    results.write("lenet5_train", per_round, summary, {"config": config})
    print(f"LeNet-5 training, 1 epoch of {N_TRAIN} Fashion-MNIST images, batch {BATCH}, Adam 1e-3, "
          f"{THREADS} threads, {rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}, "
          f"{results.machine()['cpu_model']}")
    names = list(sides)
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    print("| img/s (median) | " + " | ".join(f"{med[k]:.0f}" for k in names) + " |")
    print("| / PyTorch (median of per-round ratios) | "
          + " | ".join("" if k == "pytorch" else f"{ratio[k][0]:.2f}x" for k in names) + " |")
    print("| max RSS MB (median) | " + " | ".join(f"{statistics.median(rss[k]):.0f}" for k in names) + " |")


if __name__ == "__main__":
    main()
