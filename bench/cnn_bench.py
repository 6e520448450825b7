#!/usr/bin/env python3
"""CNN zoo speed: deepnet vs PyTorch (CPU, 2 threads), side by side.

- ResNet-18 inference at 3x224x224, batch 1 and 16 (torchvision's resnet18 in eval mode under
  no_grad; deepnet's resnet18 on burn's Flex backend without autodiff): milliseconds per batch.
- ResNet-20 training step (CIFAR form, option-A shortcuts, 1x28x28 input, batch 128, SGD with
  momentum 0.9, cross-entropy on random labels): milliseconds per step.

Random inputs. Each number is the median of one process's timed batches (after two warm-up
ones); rounds alternate the two sides; the table gives medians over rounds and per-round ratios
(PyTorch time / deepnet time: above 1 means deepnet is faster).

Usage: bench/cnn_bench.sh [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_BIN = os.environ.get("DEEPNET_CNN_STEP", os.path.join(ROOT, "target", "release", "examples", "cnn_step"))
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", sys.executable)
THREADS = 2

TORCH_SIDE = r"""
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F, torchvision
torch.set_num_threads(%(threads)d)
torch.manual_seed(0)
model_name, mode, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2
    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x
        if self.stride != 1 or self.pad:
            s = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + s)

class CifarResNet(nn.Module):
    def __init__(self, n, cin=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for i, w in enumerate([16, 32, 64]):
            for j in range(n):
                layers.append(Block(c, w, 2 if (i > 0 and j == 0) else 1)); c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)
    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

times = []
if mode == "infer":
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        for i in range(steps + 2):
            t = time.perf_counter(); model(x)
            if i >= 2: times.append((time.perf_counter() - t) * 1e3)
else:
    depth = int(model_name.replace("resnet", ""))
    model = CifarResNet((depth - 2) // 6)
    assert sum(p.numel() for p in model.parameters()) == 269722 - 288
    x = torch.randn(batch, 1, 28, 28); y = torch.arange(batch) %% 10
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps + 2):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        if i >= 2: times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"ms": times[len(times) // 2]}))
""" % dict(threads=THREADS)


def run_torch(model, mode, batch, steps):
    out = subprocess.run([TORCH_PYTHON, "-c", TORCH_SIDE, model, mode, str(batch), str(steps)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def run_rust(model, mode, batch, steps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([STEP_BIN, model, mode, str(batch), str(steps)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    configs = [("resnet18", "infer", 1, 10), ("resnet18", "infer", 16, 4), ("resnet20", "train", 128, 4)]
    results = {c: {"deepnet": [], "torch": []} for c in configs}
    for r in range(rounds):
        for cfg in configs:
            model, mode, batch, steps = cfg
            results[cfg]["deepnet"].append(run_rust(model, mode, batch, steps))
            results[cfg]["torch"].append(run_torch(model, mode, batch, steps))
            print(f"round {r + 1}: {model} {mode} b{batch}: deepnet {results[cfg]['deepnet'][-1]:.1f} ms, "
                  f"PyTorch {results[cfg]['torch'][-1]:.1f} ms", file=sys.stderr)
    print(f"\n{THREADS} threads, {rounds} rounds, medians\n")
    print("| workload | batch | deepnet | PyTorch | deepnet images/s | PyTorch images/s | speed vs PyTorch (per round) |")
    print("|---|---|---|---|---|---|---|")
    for (model, mode, batch, _), res in results.items():
        d, t = statistics.median(res["deepnet"]), statistics.median(res["torch"])
        per_round = [tt / dd for tt, dd in zip(res["torch"], res["deepnet"])]
        what = f"{model} {'inference 224x224' if mode == 'infer' else 'training step 1x28x28'}"
        print(f"| {what} | {batch} | {d:.1f} ms | {t:.1f} ms | {batch * 1000 / d:.1f} | {batch * 1000 / t:.1f} "
              f"| {statistics.median(per_round):.2f}x ({', '.join(f'{x:.2f}' for x in per_round)}) |")


if __name__ == "__main__":
    main()
