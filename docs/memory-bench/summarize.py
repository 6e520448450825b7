#!/usr/bin/env python3
"""Collects the memory-bench runs of this record into one table (every run tried, with its
settings, final validation loss and test figures) and marks, per problem and cell, the run
chosen by the lowest final validation loss. Usage: python3 docs/memory-bench/summarize.py RUNS..."""
import json
import os
import sys

rows = []
for out in sys.argv[1:]:
    for r in json.load(open(os.path.join(out, "results.json"))):
        name = r["problem"]["problem"]
        prob = {"adding": f"adding-T{r['problem'].get('length')}", "copy": f"copy-T{r['problem'].get('delay')}"}.get(name, name)
        clip = "noclip" if r["clip_norm"] is None else f"clip{r['clip_norm']:g}" if r["clip_norm"] != int(r["clip_norm"]) else f"clip{r['clip_norm']}"
        run = None
        for d in os.listdir(out):
            if d.startswith(f"{prob}-{r['cell']}-"):
                run = os.path.join(out, d)
        cfg = json.load(open(os.path.join(run, "config.json")))["train"]
        val = [json.loads(l)["val"] for l in open(os.path.join(run, "metrics.jsonl"))]
        rows.append({
            "problem": prob, "cell": r["cell"], "lr": cfg["lr"], "batch": cfg["batch_size"],
            "clip": cfg["clip_norm"], "steps": r["steps"], "val_loss": val[-1]["loss"] if val else float("nan"),
            "val_accuracy": val[-1].get("accuracy") if val else None,
            "test_loss": r["test_loss"], "test_accuracy": r["test_accuracy"], "baseline": r["baseline"],
            "seconds": r["seconds"], "out": out,
        })
best = {}
for i, r in enumerate(rows):
    k = (r["problem"], r["cell"])
    if k not in best or r["val_loss"] < rows[best[k]]["val_loss"]:
        best[k] = i
print("| problem | cell | lr | batch | clip | val loss | test loss | test accuracy | trivial baseline | s | chosen |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for i, r in enumerate(rows):
    acc = "-" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}%"
    print(f"| {r['problem']} | {r['cell']} | {r['lr']:g} | {r['batch']} | {r['clip'] or 'none'} | {r['val_loss']:.4f} | "
          f"{r['test_loss']:.4f} | {acc} | {r['baseline']:.4f} | {r['seconds']:.0f} | {'**yes**' if best[(r['problem'], r['cell'])] == i else ''} |")
json.dump(rows, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "all_runs.json"), "w"), indent=1)
