#!/usr/bin/env python3
"""Writes torchvision's ResNet-18 state dict with torch.save, the way a user's downloaded
`resnet18-f37072fd.pth` is written (no ImageNet weights can be downloaded on our machines, so
the weights are torchvision's own initialisation with a fixed seed). Used by the end-to-end
image-folder transfer run of docs/transfer/.

Usage: PY=$(scripts/torch_venv.sh); $PY scripts/make_resnet18_pth.py OUT.pth
"""
import sys

import torch
import torchvision

torch.manual_seed(0)
model = torchvision.models.resnet18()
torch.save(model.state_dict(), sys.argv[1])
print(f"{sys.argv[1]}: torchvision resnet18, {sum(p.numel() for p in model.parameters()):,} parameters, seed 0")
