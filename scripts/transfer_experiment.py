#!/usr/bin/env python3
"""The transfer-learning experiment of docs/transfer: does a network trained on some classes
help to learn new classes from few labelled images? All runs go through the `deepnet` binary.

1. Pretrain ResNet-20 on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat).
2. Learn classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) from k labelled images per class,
   k in {10, 50, 200, 1000}, three ways: from scratch (random init), `features` (the pretrained
   backbone frozen, batch norms on their running statistics, a new head trained) and `finetune`
   (all layers, the backbone at 0.1x the head's learning rate). Three seeds draw three k-shot
   samples (`--sample-seed`); the network's initial head and the data order use the run seed.
3. Every run gets the same number of optimizer steps for a given k, whatever the method.
4. Model selection on validation only: 500 held-out training images of classes 5-9 (the same
   for every run). The learning rate of each method is chosen from {0.01, 0.1} by validation
   accuracy at k = 50, sample seed 1; the test images of classes 5-9 (5,000) are used once per
   run, at its end, and never for a choice.

Writes docs/transfer/results.json, docs/transfer/table.md and docs/transfer/accuracy.svg.
Runs already finished (their test_report.json exists) are not run again.

Usage: scripts/transfer_experiment.py [--runs DIR] [--deepnet BIN] [--data DIR]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "transfer")
KS = [10, 50, 200, 1000]
STEPS = {10: 120, 50: 200, 200: 300, 1000: 500}
BATCH = 32
SEEDS = [1, 2, 3]
METHODS = ["scratch", "features", "finetune"]
LRS = [0.01, 0.1]
VAL = 500
OLD, NEW = "0,1,2,3,4", "5,6,7,8,9"


def run(cmd, log):
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}), see {log}")


def report(run_dir):
    with open(os.path.join(run_dir, "report", "test_report.json")) as f:
        test = json.load(f)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        last = [json.loads(l) for l in f if l.strip()][-1]
    return {"test_accuracy": test["accuracy"], "val_accuracy": last["val"]["accuracy"],
            "epochs": last["epoch"], "steps": last["global_step"]}


def transfer_run(a, pretrained, method, k, seed, lr, name):
    d = os.path.join(a.runs, name)
    if os.path.exists(os.path.join(d, "report", "test_report.json")):
        return report(d)
    per_epoch = math.ceil(5 * k / BATCH)
    epochs = math.ceil(STEPS[k] / per_epoch)
    common = ["--data", a.data, "--classes", NEW, "--per-class", str(k), "--sample-seed", str(seed),
              "--val-size", str(VAL), "--epochs", str(epochs), "--batch-size", str(BATCH),
              "--optimizer", "sgd", "--lr", str(lr), "--momentum", "0.9", "--weight-decay", "5e-4",
              "--schedule", "cosine", "--augment", "flip-shift", "--seed", "42", "--out", d]
    if method == "scratch":
        cmd = [a.deepnet, "train", "resnet20"] + common
    else:
        cmd = [a.deepnet, "transfer", "resnet20", "--from", pretrained, "--mode", method,
               "--backbone-lr-factor", "0.1"] + common
    os.makedirs(a.runs, exist_ok=True)
    run(cmd, os.path.join(a.runs, name + ".log"))
    return report(d)


def svg(summary, path):
    w, h, left, bottom, top, right = 640, 400, 60, 50, 30, 150
    xs = {k: left + i * (w - left - right) / (len(KS) - 1) for i, k in enumerate(KS)}
    lo = 0.5
    y = lambda v: top + (1 - (v - lo) / (1 - lo)) * (h - top - bottom)
    colors = {"scratch": "#444444", "features": "#1f77b4", "finetune": "#d62728"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">ResNet-20, Fashion-MNIST classes 5-9 from k images per class (mean ± sd, 3 seeds)</text>']
    for v in [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0%}</text>')
    for k in KS:
        out.append(f'<text x="{xs[k]:.1f}" y="{h - bottom + 18}" text-anchor="middle">{k}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">labelled images per class (k)</text>')
    for i, m in enumerate(METHODS):
        pts = [(xs[k], y(summary[m][str(k)]["mean"])) for k in KS]
        out.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
            colors[m], " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)))
        for k in KS:
            s = summary[m][str(k)]
            cx, m_y = xs[k], y(s["mean"])
            out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(s["mean"] - s["sd"]):.1f}" y2="{y(s["mean"] + s["sd"]):.1f}" stroke="{colors[m]}"/>')
            out.append(f'<circle cx="{cx:.1f}" cy="{m_y:.1f}" r="3.5" fill="{colors[m]}"/>')
        ly = top + 20 + 22 * i
        out.append(f'<line x1="{w - right + 15}" x2="{w - right + 40}" y1="{ly}" y2="{ly}" stroke="{colors[m]}" stroke-width="2"/>')
        out.append(f'<text x="{w - right + 46}" y="{ly + 4}">{m}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=os.path.join(ROOT, "runs", "transfer"))
    ap.add_argument("--deepnet", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "deepnet"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    pretrained = os.path.join(a.runs, "pretrain-classes-0-4")
    if not os.path.exists(os.path.join(pretrained, "report", "test_report.json")):
        os.makedirs(a.runs, exist_ok=True)
        run([a.deepnet, "train", "resnet20", "--data", a.data, "--classes", OLD, "--epochs", "6",
             "--batch-size", "128", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9",
             "--weight-decay", "5e-4", "--schedule", "cosine", "--augment", "flip-shift",
             "--seed", "42", "--out", pretrained], os.path.join(a.runs, "pretrain.log"))
    results = {"pretrain": report(pretrained), "selection": {}, "runs": []}

    # Learning rate per method, by validation accuracy at k = 50, sample seed 1.
    chosen = {}
    for m in METHODS:
        scores = {}
        for lr in LRS:
            r = transfer_run(a, pretrained, m, 50, 1, lr, f"{m}-k50-s1-lr{lr}")
            scores[lr] = r["val_accuracy"]
        chosen[m] = max(LRS, key=lambda lr: scores[lr])
        results["selection"][m] = {"val_accuracy_by_lr": scores, "lr": chosen[m]}

    for m in METHODS:
        for k in KS:
            for s in SEEDS:
                r = transfer_run(a, pretrained, m, k, s, chosen[m], f"{m}-k{k}-s{s}-lr{chosen[m]}")
                results["runs"].append({"method": m, "k": k, "seed": s, "lr": chosen[m], **r})

    summary = {}
    for m in METHODS:
        summary[m] = {}
        for k in KS:
            acc = [r["test_accuracy"] for r in results["runs"] if r["method"] == m and r["k"] == k]
            summary[m][str(k)] = {"mean": statistics.mean(acc), "sd": statistics.stdev(acc), "runs": acc}
    results["summary"] = summary
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = ["| k per class | optimizer steps | scratch | features | finetune |", "|---|---|---|---|---|"]
    for k in KS:
        steps = sorted({r["steps"] for r in results["runs"] if r["k"] == k})
        cells = [f"{100 * summary[m][str(k)]['mean']:.1f} ± {100 * summary[m][str(k)]['sd']:.1f}" for m in METHODS]
        lines.append(f"| {k} | {', '.join(map(str, steps))} | " + " | ".join(cells) + " |")
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(summary, os.path.join(OUT, "accuracy.svg"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
