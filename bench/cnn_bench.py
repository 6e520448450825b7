#!/usr/bin/env python3
"""CNN zoo speed: deepnet vs PyTorch (CPU, 2 threads), side by side.

- ResNet-18 inference at 3x224x224, batch 1 and 16 (torchvision's resnet18 in eval mode under
  torch.inference_mode(); the same network exported to ONNX and run by ONNX Runtime with 2
  intra-op threads; deepnet's resnet18 on burn's Flex backend without autodiff): milliseconds
  per batch.
- ResNet-20 training step (CIFAR form, option-A shortcuts, 1x28x28 input, batch 128, SGD with
  momentum 0.9, cross-entropy on random labels): milliseconds per step.

Random inputs. Each number is the median of one process's timed batches (after three warm-up
ones on every side); rounds alternate the sides; the table gives medians over rounds and the
median of per-round ratios (other side's time / deepnet's: above 1 means deepnet is faster).
Writes bench/results/cnn_bench-DATE.json.

Usage: bench/cnn_bench.sh [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

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

WARMUP = 3
times = []
if mode == "infer":
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        for i in range(steps + WARMUP):
            t = time.perf_counter(); model(x)
            if i >= WARMUP: times.append((time.perf_counter() - t) * 1e3)
else:
    depth = int(model_name.replace("resnet", ""))
    model = CifarResNet((depth - 2) // 6)
    assert sum(p.numel() for p in model.parameters()) == 269722 - 288
    x = torch.randn(batch, 1, 28, 28); y = torch.arange(batch) %% 10
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps + WARMUP):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        if i >= WARMUP: times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"ms": times[len(times) // 2]}))
""" % dict(threads=THREADS)


ORT_SIDE = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
path, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = %(threads)d
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
times = []
for i in range(steps + 3):
    t = time.perf_counter(); sess.run(None, {name: x})
    if i >= 3: times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"ms": times[len(times) // 2], "ort_version": ort.__version__}))
""" % dict(threads=THREADS)

EXPORT = r"""
import sys, torch, torchvision
torch.manual_seed(0)
model = getattr(torchvision.models, sys.argv[1])(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
torch.onnx.export(model, x, sys.argv[2], input_names=["x"], output_names=["logits"],
                  dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                  dynamo=False)
"""


def onnx_model(name):
    """torchvision's NAME (random weights: speed does not depend on them) exported to ONNX,
    once, into the cache directory beside the virtualenv."""
    cache = os.path.join(os.path.expanduser("~"), ".cache", "deepnet-bench-onnx")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"{name}.onnx")
    if not os.path.exists(path):
        subprocess.run([TORCH_PYTHON, "-c", EXPORT, name, path + ".tmp"], check=True)
        os.replace(path + ".tmp", path)
    return path


def run_ort(model, batch, steps):
    out = subprocess.run([TORCH_PYTHON, "-c", ORT_SIDE, onnx_model(model), str(batch), str(steps)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


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
    results_by = {c: {"deepnet": [], "pytorch": [], "onnxruntime": []} for c in configs}
    per_round = []
    for r in range(rounds):
        row = {}
        for cfg in configs:
            model, mode, batch, steps = cfg
            res = results_by[cfg]
            res["deepnet"].append(run_rust(model, mode, batch, steps))
            res["pytorch"].append(run_torch(model, mode, batch, steps))
            if mode == "infer":
                res["onnxruntime"].append(run_ort(model, batch, steps))
            row[f"{model} {mode} b{batch}"] = {k: v[-1] for k, v in res.items() if v}
            print(f"round {r + 1}: {model} {mode} b{batch}: "
                  + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in res.items() if v), file=sys.stderr)
        per_round.append(row)
    summary = {}
    print(f"\n{THREADS} threads, {rounds} rounds, medians; ratios: median of per-round ratios "
          f"(other side's time / deepnet's), {results.machine()['cpu_model']}\n")
    print("| workload | batch | deepnet | PyTorch | ONNX Runtime | deepnet images/s | vs PyTorch (per round) | vs ONNX Runtime (per round) |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, mode, batch, _), res in results_by.items():
        key = f"{model} {mode} b{batch}"
        med = {k: statistics.median(v) for k, v in res.items() if v}
        vs_torch = results.median_ratio(res["pytorch"], res["deepnet"])
        vs_ort = results.median_ratio(res["onnxruntime"], res["deepnet"]) if res["onnxruntime"] else None
        summary[key] = {"ms_median": med, "speed_vs_pytorch": {"median": vs_torch[0], "per_round": vs_torch[1]}}
        if vs_ort:
            summary[key]["speed_vs_onnxruntime"] = {"median": vs_ort[0], "per_round": vs_ort[1]}
        what = f"{model} {'inference 224x224' if mode == 'infer' else 'training step 1x28x28'}"
        fmt = lambda r: f"{r[0]:.2f}x ({', '.join(f'{x:.2f}' for x in r[1])})" if r else "–"
        ort_ms = f"{med['onnxruntime']:.1f} ms" if "onnxruntime" in med else "–"
        print(f"| {what} | {batch} | {med['deepnet']:.1f} ms | {med['pytorch']:.1f} ms | {ort_ms} | "
              f"{batch * 1000 / med['deepnet']:.1f} | {fmt(vs_torch)} | {fmt(vs_ort)} |")
    results.write("cnn_bench", per_round, summary,
                  {"config": {"threads": THREADS, "rounds": rounds,
                              "workloads": [list(c) for c in configs]}})


if __name__ == "__main__":
    main()
