#!/usr/bin/env python3
"""LeNet-5 training throughput: deepnet vs PyTorch (CPU, 2 threads), side by side.

Both sides train the same modern LeNet-5 (61,706 parameters) for one epoch on the same real
Fashion-MNIST training images (the first 55,000, what deepnet trains on after carving its
5,000-image validation set), batch 64, Adam lr 1e-3. Rounds alternate deepnet and PyTorch so
that machine noise hits both; the table gives medians, absolute numbers and ratios.

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

images = idx("%(data)s/train-images-idx3-ubyte.gz")[: %(n)d]
labels = idx("%(data)s/train-labels-idx1-ubyte.gz")[: %(n)d]
x = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None])
y = torch.from_numpy(labels.astype(np.int64))

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
perm = torch.randperm(len(y))
start = time.perf_counter()
seen = 0
correct = 0
for i in range(0, len(y), %(batch)d):
    idx_b = perm[i : i + %(batch)d]
    xb, yb = x[idx_b], y[idx_b]
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


def deepnet_round(reference_ops=False):
    os.environ["DEEPNET_REFERENCE_OPS"] = "1" if reference_ops else "0"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        _, rss = measure([DEEPNET, "train", "lenet5", "--data", DATA, "--epochs", "1",
                          "--batch-size", str(BATCH), "--optimizer", "adam", "--lr", "1e-3", "--schedule", "constant",
                          "--val-size", "5000", "--out", out])
        with open(os.path.join(out, "metrics.jsonl")) as f:
            m = json.loads(f.readline())
        return {"images_per_second": m["images_per_second"], "seconds": m["train_seconds"],
                "train_accuracy": m["train_accuracy"], "max_rss_mb": rss}


def torch_round(python):
    script = TORCH_SIDE % {"threads": THREADS, "data": DATA, "n": N_TRAIN, "batch": BATCH}
    out, rss = measure([python, "-c", script])
    r = json.loads(out.strip().splitlines()[-1])
    r["max_rss_mb"] = rss
    return r


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    python = os.environ.get("TORCH_PYTHON", sys.executable)
    env_threads = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    os.environ.update(env_threads)
    ours, plain, theirs = [], [], []
    for r in range(rounds):
        ours.append(deepnet_round())
        plain.append(deepnet_round(reference_ops=True))
        theirs.append(torch_round(python))
        print(f"round {r + 1}: deepnet {ours[-1]['images_per_second']:.0f} img/s, "
              f"deepnet with burn's ops only {plain[-1]['images_per_second']:.0f} img/s, "
              f"pytorch {theirs[-1]['images_per_second']:.0f} img/s, "
              f"ratio {ours[-1]['images_per_second'] / theirs[-1]['images_per_second']:.2f}x",
              file=sys.stderr)
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    d_ips, t_ips = med(ours, "images_per_second"), med(theirs, "images_per_second")
    d_rss, t_rss = med(ours, "max_rss_mb"), med(theirs, "max_rss_mb")
    import platform
    print(f"LeNet-5 training, 1 epoch of {N_TRAIN} Fashion-MNIST images, batch {BATCH}, Adam 1e-3, "
          f"{THREADS} threads, {rounds} interleaved rounds (medians), {time.strftime('%Y-%m-%d')}, "
          f"{platform.processor() or platform.machine()} x{os.cpu_count()}")
    p_ips, p_rss = med(plain, "images_per_second"), med(plain, "max_rss_mb")
    print("| | deepnet | deepnet, burn's ops only | PyTorch | deepnet / PyTorch | burn's ops only / PyTorch |")
    print("|---|---|---|---|---|---|")
    print(f"| training throughput (img/s) | {d_ips:.0f} | {p_ips:.0f} | {t_ips:.0f} | {d_ips / t_ips:.2f}x | {p_ips / t_ips:.2f}x |")
    print(f"| seconds per epoch | {med(ours, 'seconds'):.1f} | {med(plain, 'seconds'):.1f} | {med(theirs, 'seconds'):.1f} | | |")
    ratios = sorted(o["images_per_second"] / t["images_per_second"] for o, t in zip(ours, theirs))
    print(f"| deepnet / PyTorch within each round (min / median / max) | | | | "
          f"{ratios[0]:.2f}x / {statistics.median(ratios):.2f}x / {ratios[-1]:.2f}x | |")
    print(f"| peak memory, max RSS (MB) | {d_rss:.0f} | {p_rss:.0f} | {t_rss:.0f} | {d_rss / t_rss:.2f}x | {p_rss / t_rss:.2f}x |")


if __name__ == "__main__":
    main()
