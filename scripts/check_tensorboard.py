#!/usr/bin/env python3
"""Reads a deepnet run directory's TensorBoard files with TensorBoard's own loader
(EventAccumulator, what `tensorboard --logdir` uses) and prints every scalar series: how many
points, first and last step and value. Exits non-zero if a series has a step twice or out of
order (what a resumed run must not leave once TensorBoard has honoured its restart events).

Usage: python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard
       /tmp/tb/bin/python scripts/check_tensorboard.py RUN_DIR
"""
import os
import sys

from tensorboard.backend.event_processing import event_accumulator


def main():
    run = sys.argv[1]
    bad = 0
    for sub in ("train", "validation"):
        folder = os.path.join(run, "tensorboard", sub)
        acc = event_accumulator.EventAccumulator(folder)
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            points = acc.Scalars(tag)
            steps = [p.step for p in points]
            ok = all(a < b for a, b in zip(steps, steps[1:]))
            bad += not ok
            print(f"{sub:<10} {tag:<18} {len(points):>6} points, steps {steps[0]}..{steps[-1]}, "
                  f"first {points[0].value:.4g}, last {points[-1].value:.4g}"
                  + ("" if ok else "  REPEATED OR UNORDERED STEPS"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
