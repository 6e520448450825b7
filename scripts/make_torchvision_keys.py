#!/usr/bin/env python3
"""Writes tests/fixtures/vision/torchvision_keys.json: for torchvision's resnet18, googlenet
(as released: no auxiliary classifiers) and vgg11_bn, every state-dict key with its shape and
dtype. Tests check deepnet's export against it without calling Python.

Usage: PY=$(scripts/torch_venv.sh); $PY scripts/make_torchvision_keys.py
"""
import json
import os

import torchvision

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tests", "fixtures", "vision", "torchvision_keys.json")
models = {
    "resnet18": torchvision.models.resnet18(),
    "googlenet": torchvision.models.googlenet(aux_logits=False, init_weights=False),
    "vgg11_bn": torchvision.models.vgg11_bn(),
}
keys = {name: [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in m.state_dict().items()]
        for name, m in models.items()}
with open(OUT, "w") as f:
    json.dump(keys, f, indent=0)
print({k: len(v) for k, v in keys.items()})
