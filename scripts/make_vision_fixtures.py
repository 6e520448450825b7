"""Writes the torchvision parity fixtures of deepnet's CNNs to tests/fixtures/vision/.

Run through scripts/make_vision_fixtures.sh (it makes the PyTorch virtualenv). For each of
alexnet, vgg16, vgg16_bn, resnet18, resnet50 and googlenet (with its auxiliary heads, in eval mode,
transform_input off), every parameter and buffer is set by a deterministic rule that the Rust side
computes too (deepnet::weights::torchvision::rule_tensor), so no weights need to be committed:

    h = FNV-1a-32(key); z = splitmix64(h * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9) (mod 2^64)
    b_i = (z >> 11) / 2^53 * 2 - 1   (uniform in [-1, 1), float64; i the row-major index)
    conv/linear weight: 2 b_i / sqrt(fan_in); 1-D weight (batch norm): 0.8 + 0.1 b_i
    bias, running_mean: 0.1 b_i; running_var: 1 + 0.25 (b_i + 1)

Pseudo-random rather than smooth values: a smooth rule (sin of the index) makes the sums cancel
so much that float32 PyTorch itself is 4e-4 off its float64 result on VGG-16, and two float32
implementations cannot be compared at 1e-4. The input is x_i = sin(0.1 i) over [2, 3, 64, 64] (row-major), the same on both sides. Each file
holds the logits [2, 1000] of torchvision's model in eval mode (batch norm with running stats).
"""

import math
import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "vision")
INPUT = (2, 3, 64, 64)


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def uniform(h, n):
    with np.errstate(over="ignore"):
        z = np.uint64(h) * np.uint64(0x9E3779B97F4A7C15) + np.arange(n, dtype=np.uint64) * np.uint64(
            0xBF58476D1CE4E5B9
        )
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0


def rule(key, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    b = uniform(fnv1a(key), n)
    last = key.rsplit(".", 1)[-1]
    if last == "weight" and len(shape) >= 2:
        v = 2.0 * b / math.sqrt(n / shape[0])
    elif last == "weight":
        v = 0.8 + 0.1 * b
    elif last == "running_var":
        v = 1.0 + 0.25 * (b + 1.0)
    else:
        v = 0.1 * b
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    x = torch.from_numpy(
        np.sin(0.1 * np.arange(np.prod(INPUT), dtype=np.float64)).astype(np.float32).reshape(INPUT)
    )
    builders = {
        "alexnet": lambda: torchvision.models.alexnet(weights=None),
        "vgg16": lambda: torchvision.models.vgg16(weights=None),
        "vgg16_bn": lambda: torchvision.models.vgg16_bn(weights=None),
        "resnet18": lambda: torchvision.models.resnet18(weights=None),
        "resnet50": lambda: torchvision.models.resnet50(weights=None),
        "googlenet": lambda: torchvision.models.googlenet(
            weights=None, aux_logits=True, init_weights=False, transform_input=False
        ),
    }
    for name, build in builders.items():
        model = build()
        with torch.no_grad():
            for key, t in model.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    continue
                t.copy_(rule(key, tuple(t.shape)))
            model.eval()
            logits = model(x)
        logits = logits.numpy().astype(np.float32)
        save_file({"logits": np.ascontiguousarray(logits)}, os.path.join(OUT, name + ".safetensors"))
        print(f"{name}: logits {logits.shape}, max |logit| {np.abs(logits).max():.4g}")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
