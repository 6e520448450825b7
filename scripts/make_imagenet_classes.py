"""Writes assets/imagenet_classes.txt: the 1000 ImageNet class names in torchvision's order (the
index of each line is the class index of torchvision's ImageNet weights), one per line.
Run with the PyTorch virtualenv's python (scripts/torch_venv.sh makes it; needs torchvision)."""
import os

import torchvision

names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
assert len(names) == 1000
out = os.path.join(os.path.dirname(__file__), "..", "assets", "imagenet_classes.txt")
with open(out, "w") as f:
    f.write("\n".join(names) + "\n")
print(f"wrote {out}: {len(names)} names")
