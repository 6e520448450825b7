#!/usr/bin/env python3
"""Checks that a model trained or transferred by deepnet goes back to PyTorch: loads the file
written by `deepnet export RUN --to FILE.pth` with `torch.load(FILE, weights_only=True)` (torch's
restricted unpickler: no code of ours runs) into torchvision's model with
`load_state_dict(strict=True)`, runs it in eval mode on an input .npy, and compares the logits
with those `deepnet infer` wrote for the same input.

Usage: $PY scripts/check_export.py MODEL NUM_CLASSES FILE.pth INPUT.npy DEEPNET_LOGITS.npy
"""
import sys

import numpy as np
import torch
import torchvision

name, classes, pth, x_path, y_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
state = torch.load(pth, weights_only=True)
model = getattr(torchvision.models, name)(num_classes=classes)
model.load_state_dict(state, strict=True)
model.eval()
x = torch.from_numpy(np.load(x_path))
with torch.inference_mode():
    theirs = model(x).numpy()
ours = np.load(y_path)
diff = np.abs(theirs - ours).max()
scale = np.abs(theirs).max()
print(f"{pth}: {len(state)} tensors loaded with weights_only=True, strict=True")
print(f"logits {theirs.shape}: max |torch - deepnet| = {diff:.3g} (max |logit| {scale:.3g})")
sys.exit(0 if diff <= 1e-4 * max(scale, 1.0) else 1)
