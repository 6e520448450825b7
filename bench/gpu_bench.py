#!/usr/bin/env python3
"""GPU speed: deepnet on the GPU against PyTorch CUDA on the same GPU, and against deepnet on the
same machine's CPU. Run by bench/gpu.sh on a machine with an NVIDIA GPU, offline, from binaries
that bench/gpu_prepare.sh built and stripped.

Workloads (random inputs, as bench/cnn_bench.py):
- ResNet-18 inference at 3x224x224, batch 64 (torchvision's resnet18, eval, inference_mode);
- ResNet-18 training step at 3x224x224, batch 32, 1000 classes (SGD, momentum 0.9, lr 0.1,
  cross-entropy on labels i mod 1000);
- LeNet-5 training step at 1x28x28, batch 64 and 256 (the same SGD), the network of
  bench/lenet5_train.py.

Each figure is the median of one process's timed batches after warm-up batches (deepnet: 2, as
examples/cnn_step does; PyTorch: 3); each GPU batch ends with a device synchronisation
(`Device::sync`, `torch.cuda.synchronize`). Rounds alternate the sides, and a ratio is the
median of per-round ratios. PyTorch runs with its defaults (float32, cuDNN with
`torch.backends.cudnn.benchmark = True`, its own autotuning, as burn's autotune is deepnet's;
cuDNN may use TF32 for convolutions, PyTorch's default). deepnet's CPU side uses all the
machine's cores.

Writes bench/results/gpu_bench-DATE.json. Usage: bench/gpu_bench.py ROUNDS
Environment: DEEPNET_GPU_BINS="wgpu=PATH,cuda=PATH" (the cnn_step binaries per backend),
DEEPNET_CPU_BIN (the CPU build; default: the first GPU binary, which runs `cpu` too),
TORCH_PYTHON (default: this python).
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

TORCH_PYTHON = os.environ.get("TORCH_PYTHON", sys.executable)

TORCH_SIDE = r"""
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F, torchvision
torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
model_name, mode, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
dev = torch.device("cuda")

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

if model_name == "lenet5":
    model, shape, classes = LeNet5(), (1, 28, 28), 10
else:
    model, shape, classes = getattr(torchvision.models, model_name)(weights=None), (3, 224, 224), 1000
model = model.to(dev)
x = torch.randn(batch, *shape, device=dev)
WARMUP = 3
times = []
if mode == "infer":
    model.eval()
    with torch.inference_mode():
        for i in range(steps + WARMUP):
            torch.cuda.synchronize(); t = time.perf_counter()
            model(x).cpu()
            if i >= WARMUP: times.append((time.perf_counter() - t) * 1e3)
else:
    y = (torch.arange(batch) % classes).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps + WARMUP):
        torch.cuda.synchronize(); t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        torch.cuda.synchronize()
        if i >= WARMUP: times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"ms": times[len(times) // 2], "torch": torch.__version__,
                  "gpu": torch.cuda.get_device_name(0)}))
"""

# (model, mode, batch, timed steps on a GPU, timed steps on the CPU)
CONFIGS = [
    ("resnet18", "infer", 64, 20, 3),
    ("resnet18", "train", 32, 10, 2),
    ("lenet5", "train", 64, 50, 20),
    ("lenet5", "train", 256, 50, 10),
]


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def run(cmd, env=None, timeout=300):
    """Runs a side; returns its JSON line, or None with the error printed (a side that fails
    must not cost the other sides' figures)."""
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        print(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    r = last_json(p.stdout)
    r["wall_s"] = round(time.time() - t, 1)
    return r


def paired_ratio(others, ours):
    """Median of the per-round ratios other / ours over the rounds where both sides ran (a
    side measured in fewer rounds pairs with the first ones), or None."""
    pairs = [(t, o) for t, o in zip(others, ours) if t and o]
    if not pairs:
        return None
    ratio, per = results.median_ratio([t for t, _ in pairs], [o for _, o in pairs])
    return {"median": ratio, "per_round": per}


def gpu_info():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             check=True).stdout.strip()
        return out
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    bins = dict(kv.split("=", 1) for kv in os.environ["DEEPNET_GPU_BINS"].split(",") if kv)
    cpu_bin = os.environ.get("DEEPNET_CPU_BIN", next(iter(bins.values())))
    sides = [f"deepnet-{b}" for b in bins] + ["pytorch-cuda", "deepnet-cpu"]
    figures = {c: {s: [] for s in sides} for c in CONFIGS}
    per_round = []
    for r in range(rounds):
        row = {}
        for cfg in CONFIGS:
            model, mode, batch, steps, cpu_steps = cfg
            args = [model, mode, str(batch)]
            for backend, path in bins.items():
                res = run([path] + args + [str(steps), backend])
                figures[cfg][f"deepnet-{backend}"].append(res and res["ms"])
            res = run([TORCH_PYTHON, "-c", TORCH_SIDE] + args + [str(steps)])
            figures[cfg]["pytorch-cuda"].append(res and res["ms"])
            # The CPU is slow on ResNet-18: measured in the first round only.
            if r == 0 or model == "lenet5":
                res = run([cpu_bin] + args + [str(cpu_steps), "cpu"])
                figures[cfg]["deepnet-cpu"].append(res and res["ms"])
            key = f"{model} {mode} b{batch}"
            row[key] = {s: v[-1] for s, v in figures[cfg].items() if len(v) == r + 1}
            print(f"round {r + 1}: {key}: " + ", ".join(
                f"{s} {v if v is None else round(v, 2)} ms" for s, v in row[key].items()),
                file=sys.stderr, flush=True)
        per_round.append(row)

    gpu = gpu_info()
    summary = {}
    print(f"\n{gpu}; {rounds} rounds; ms per batch, medians; ratios: median of per-round "
          f"ratios (PyTorch's time / deepnet's: above 1 means deepnet is faster)\n")
    print("| workload | batch | " + " | ".join(sides) + " | " + " | ".join(
        f"{b} vs PyTorch CUDA" for b in bins) + " | " + " | ".join(f"{b} / CPU" for b in bins) + " |")
    print("|---|---|" + "---|" * (len(sides) + 2 * len(bins)))
    for cfg, fig in figures.items():
        model, mode, batch, _, _ = cfg
        key = f"{model} {mode} b{batch}"
        med = {s: statistics.median([x for x in v if x is not None]) if any(
            x is not None for x in v) else None for s, v in fig.items()}
        entry = {"ms_median": med}
        cells_vs, cells_cpu = [], []
        for b in bins:
            ours = fig[f"deepnet-{b}"]
            vs = paired_ratio(fig["pytorch-cuda"], ours)
            if vs:
                entry[f"{b}_vs_pytorch_cuda"] = vs
            cells_vs.append(f"{vs['median']:.2f}x ({', '.join(f'{x:.2f}' for x in vs['per_round'])})"
                            if vs else "–")
            over_cpu = paired_ratio(fig["deepnet-cpu"], ours)
            if over_cpu:
                entry[f"{b}_speedup_over_cpu"] = over_cpu
            cells_cpu.append(f"{over_cpu['median']:.1f}x" if over_cpu else "–")
        summary[key] = entry
        ms = " | ".join("–" if med[s] is None else f"{med[s]:.2f} ms" for s in sides)
        print(f"| {model} {'inference' if mode == 'infer' else 'training step'} | {batch} | {ms} | "
              + " | ".join(cells_vs) + " | " + " | ".join(cells_cpu) + " |")
    results.write("gpu_bench", per_round, summary,
                  {"gpu": gpu, "config": {"rounds": rounds, "sides": sides,
                                          "workloads": [list(c) for c in CONFIGS],
                                          "pytorch": "float32, cudnn.benchmark on, TF32 defaults"}})


if __name__ == "__main__":
    main()
