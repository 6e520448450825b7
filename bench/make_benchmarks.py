#!/usr/bin/env python3
"""Regenerates the measured tables of BENCHMARKS.md from bench/results/*.json.

BENCHMARKS.md marks each generated table with `<!-- results: NAME -->` ... `<!-- /results -->`;
this script replaces what lies between with a table built from the newest results file of
benchmark NAME (or, with `<!-- results: NAME FILE -->`, from that file), headed by the file's
name, date, command and CPU. Prose outside the markers is written by hand and left alone.

Usage: python3 bench/make_benchmarks.py [--check]   (--check: exit 1 if the file would change)
"""
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "BENCHMARKS.md")
BLOCK = re.compile(r"(<!-- results: (\S+)(?: (\S+))? -->\n)(.*?)(<!-- /results -->)", re.S)


def newest(name):
    files = sorted(glob.glob(os.path.join(ROOT, "bench", "results", f"{name}-*.json")))
    if not files:
        sys.exit(f"no bench/results/{name}-*.json")
    return files[-1]


def header(r, path):
    m = r["machine"]
    isa = "AVX-512" if m.get("avx512f") else ("AVX2" if m.get("avx2") else "no AVX2")
    return (f"Source: `{os.path.relpath(path, ROOT)}` — `{r['command']}`, {r['date'][:10]}, "
            f"commit {r.get('commit')}; CPU: {m['cpu_model']} (family {m.get('family')} model "
            f"{m.get('model')}, {isa}), {m.get('cpus')} cores. Ratios: median of per-round ratios.\n\n")


def rounds(v):
    return ", ".join(f"{x:.2f}" for x in v)


def lenet5_train(r):
    s = r["summary"]
    names = list(s["images_per_second_median"])
    label = {"deepnet": "deepnet", "deepnet_burn_ops": "deepnet, burn's ops only",
             "pytorch": "PyTorch", "baseline": f"deepnet binary `{os.path.basename(r['config'].get('baseline_bin') or '')}`"}
    out = "| | " + " | ".join(label.get(n, n) for n in names) + " |\n"
    out += "|---" * (len(names) + 1) + "|\n"
    out += "| training throughput, img/s (median) | " + " | ".join(
        f"{s['images_per_second_median'][n]:.0f}" for n in names) + " |\n"
    out += "| seconds per epoch (median) | " + " | ".join(
        f"{s['seconds_median'][n]:.1f}" for n in names) + " |\n"
    out += "| speed vs PyTorch (per round) | " + " | ".join(
        "" if n == "pytorch" else
        f"**{s['ratio_vs_pytorch'][n]['median']:.2f}x** ({rounds(s['ratio_vs_pytorch'][n]['per_round'])})"
        for n in names) + " |\n"
    out += "| peak memory, max RSS MB (median) | " + " | ".join(
        f"{s['max_rss_mb_median'][n]:.0f}" for n in names) + " |\n"
    b = s["deepnet_vs_burn_ops"]
    out += (f"\ndeepnet's own ops against burn's, same rounds: **{b['median']:.2f}x** "
            f"({rounds(b['per_round'])}).\n")
    return out


def cnn_bench(r):
    out = ("| workload | deepnet | PyTorch | ONNX Runtime | deepnet images/s | speed vs PyTorch (per round) "
           "| speed vs ONNX Runtime (per round) |\n|---|---|---|---|---|---|---|\n")
    for key, s in r["summary"].items():
        model, mode, batch = key.split()
        b = int(batch[1:])
        ms = s["ms_median"]
        what = f"{model} {'inference 224x224' if mode == 'infer' else 'training step 1x28x28'}, batch {b}"
        ort = f"{ms['onnxruntime']:.1f} ms" if "onnxruntime" in ms else "–"
        vt = s["speed_vs_pytorch"]
        vo = s.get("speed_vs_onnxruntime")
        out += (f"| {what} | {ms['deepnet']:.1f} ms | {ms['pytorch']:.1f} ms | {ort} | "
                f"{b * 1000 / ms['deepnet']:.1f} | **{vt['median']:.2f}x** ({rounds(vt['per_round'])}) | "
                + (f"**{vo['median']:.2f}x** ({rounds(vo['per_round'])})" if vo else "–") + " |\n")
    return out


def rnn_train(r):
    out = ("| layer | hidden | deepnet | PyTorch | burn built-in | speed vs PyTorch (per round) "
           "| speed vs burn |\n|---|---|---|---|---|---|---|\n")
    for key, s in r["summary"].items():
        cell, hidden = key.split()
        ms = s["ms_median"]
        vt, vb = s["speed_vs_pytorch"], s["speed_vs_burn"]
        out += (f"| {cell.upper()} | {hidden[1:]} | {ms['deepnet']:.1f} ms | {ms['pytorch']:.1f} ms | "
                f"{ms['burn']:.1f} ms | **{vt['median']:.2f}x** ({rounds(vt['per_round'])}) | "
                f"{vb['median']:.2f}x |\n")
    return out


def char_lm_train(r):
    c = r["config"]
    chars = c["batch"] * c["bptt"]
    out = ("| cell | deepnet ms/step | deepnet chars/s | PyTorch ms/step | PyTorch chars/s "
           "| speed vs PyTorch (per round) |\n|---|---|---|---|---|---|\n")
    for cell, s in r["summary"].items():
        ms = s["ms_median"]
        v = s["speed_vs_pytorch"]
        out += (f"| {cell.upper()} {c['layers']}x{c['hidden']} | {ms['deepnet']:.1f} | "
                f"{chars / ms['deepnet'] * 1e3:,.0f} | {ms['pytorch']:.1f} | {chars / ms['pytorch'] * 1e3:,.0f} | "
                f"**{v['median']:.2f}x** ({rounds(v['per_round'])}) |\n")
    return out


def speed_gate(r):
    out = ("| configuration | workload | burn's ops / deepnet's | gate minimum | per pair |\n"
           "|---|---|---|---|---|\n")
    for row in r["rounds"]:
        out += (f"| {row['config']} | {row['workload']} | **{row['median_ratio']:.2f}x** | "
                f"{row['min_ratio']:.2f}x ({'pass' if row['passes'] else 'fails'}) | "
                f"{rounds(row['ratios'])} |\n")
    return out


def conv_paths(r):
    # Files before the Winograd or the shifted lowering lack their columns.
    paths = [p for p in ["packed", "gemm", "winograd", "shifted", "auto", "burn"] if p in r["rounds"][0]]
    names = {"packed": "packed", "gemm": "gemm", "winograd": "winograd (3x3/1 only)",
             "shifted": "shifted (3-wide, stride 1)", "auto": "auto (by shape)", "burn": "burn's conv"}
    out = ("| convolution (ms, median) | " + " | ".join(names[p] for p in paths) + " |\n"
           + "|---" * (len(paths) + 1) + "|\n")
    ours = [p for p in paths if p != "burn"]
    for row in r["rounds"]:
        best = min(row[p] for p in ours)
        out += f"| {row['shape']} | " + " | ".join(
            f"**{row[p]:.2f}**" if row[p] == best and p != "burn" else f"{row[p]:.2f}"
            for p in paths) + " |\n"
    return out


def loop_speed(r):
    base = r.get("base_commit", "?")
    # The first use of this benchmark compared the image-only loop (fec8f12) with the
    # task-general one; later ones compare a kernel change with the commit before it.
    labels = (("earlier loop", "task-general loop") if base == "fec8f12"
              else (f"binary of `{base}`", "this binary"))
    out = (f"| workload | {labels[0]} (images/s) | {labels[1]} (images/s) | new / old, median (per round) |\n"
           "|---|---|---|---|\n")
    for name, w in r["summary"].items():
        per = [x["ratio"] for x in r["rounds"] if x["workload"] == name]
        out += (f"| {name} `{' '.join(w['args'])}` | {w['median_base']:.0f} | {w['median_current']:.0f} | "
                f"**{w['median_ratio']:.3f}** ({rounds(per)}) |\n")
    return out


def gpu_bench(r):
    sides = r["config"]["sides"]
    gpus = [s.removeprefix("deepnet-") for s in sides if s.startswith("deepnet-") and s != "deepnet-cpu"]
    out = (f"GPU: {r.get('gpu')}; PyTorch: {r['config'].get('pytorch')}. Milliseconds per batch (median); "
           "ratios above 1: deepnet faster.\n\n"
           "| workload | batch | " + " | ".join(sides) + " | "
           + " | ".join(f"{g} images/s" for g in gpus) + " | "
           + " | ".join(f"{g} vs PyTorch CUDA (per round)" for g in gpus) + " | "
           + " | ".join(f"{g} over deepnet CPU" for g in gpus) + " |\n"
           "|---|---|" + "---|" * (len(sides) + 3 * len(gpus)) + "\n")
    for key, e in r["summary"].items():
        model, mode, batch = key.split()
        ms = " | ".join("–" if e["ms_median"].get(s) is None else f"{e['ms_median'][s]:.2f}" for s in sides)
        vs = " | ".join(f"**{e[f'{g}_vs_pytorch_cuda']['median']:.2f}x** ({rounds(e[f'{g}_vs_pytorch_cuda']['per_round'])})"
                        if f"{g}_vs_pytorch_cuda" in e else "–" for g in gpus)
        cpu = " | ".join(f"{e[f'{g}_speedup_over_cpu']['median']:.1f}x" if f"{g}_speedup_over_cpu" in e else "–"
                         for g in gpus)
        ips = " | ".join("–" if e["ms_median"].get(f"deepnet-{g}") is None
                         else f"{int(batch[1:]) * 1000 / e['ms_median'][f'deepnet-{g}']:.0f}" for g in gpus)
        what = f"{model} {'inference' if mode == 'infer' else 'training step'}"
        out += f"| {what} | {batch[1:]} | {ms} | {ips} | {vs} | {cpu} |\n"
    return out


def step_ab(r):
    base = r.get("base_commit", "?")
    out = (f"| workload | `{base}` ms (median) | current ms (median) | speed `{base}` / current, "
           "median (per round) |\n|---|---|---|---|\n")
    for name, w in r["summary"].items():
        out += (f"| {name} | {w['median_base_ms']:.1f} | {w['median_current_ms']:.1f} | "
                f"**{w['median_speed_ratio']:.2f}x** ({rounds(w['per_round'])}) |\n")
    return out


TABLES = {"gpu_bench": gpu_bench, "loop_speed": loop_speed, "conv_paths": conv_paths, "lenet5_train": lenet5_train, "cnn_bench": cnn_bench, "rnn_train": rnn_train,
          "speed_gate": speed_gate, "step_ab": step_ab, "char_lm_train": char_lm_train}


def render(match):
    name, file = match.group(2), match.group(3)
    path = os.path.join(ROOT, file) if file else newest(name)
    with open(path) as f:
        r = json.load(f)
    return match.group(1) + header(r, path) + TABLES[name](r) + match.group(5)


def main():
    with open(DOC) as f:
        old = f.read()
    new = BLOCK.sub(render, old)
    if "--check" in sys.argv:
        sys.exit(0 if new == old else "BENCHMARKS.md is not up to date with bench/results")
    with open(DOC, "w") as f:
        f.write(new)


if __name__ == "__main__":
    main()
