"""Results files for the bench scripts: every run writes bench/results/NAME-DATE.json with the
machine (lscpu's CPU model, family, model number and flags; cores), the date, the command, the
commit, the per-round figures and the summary, so that every figure in BENCHMARKS.md and
README.md can be traced to a file. bench/make_benchmarks.py builds BENCHMARKS.md's tables from
the newest file of each benchmark.

The ratio rule, everywhere: per round, one side's figure over the other's, both measured in that
round; the summary ratio is the median of those per-round ratios.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def machine():
    """The CPU as lscpu names it, and the machine's cores and memory."""
    fields = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = fields.get("Flags", "").split()
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_model": fields.get("Model name", platform.processor()),
        "vendor": fields.get("Vendor ID"),
        "family": fields.get("CPU family"),
        "model": fields.get("Model"),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "flags": flags,
    }


def commit():
    # A copy without .git (a GPU machine's) names its commit through DEEPNET_COMMIT.
    if os.environ.get("DEEPNET_COMMIT"):
        return os.environ["DEEPNET_COMMIT"]
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def software():
    """rustc's version, and the versions of PyTorch, torchvision and ONNX Runtime in the bench
    virtualenv (TORCH_PYTHON), where present."""
    out = {}
    try:
        out["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True,
                                      check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    python = os.environ.get("TORCH_PYTHON")
    if python:
        probe = ("import importlib.metadata as m, json\n"
                 "v = {}\n"
                 "for p in ['torch', 'torchvision', 'onnxruntime']:\n"
                 "    try: v[p] = m.version(p)\n"
                 "    except m.PackageNotFoundError: pass\n"
                 "print(json.dumps(v))")
        try:
            out.update(json.loads(subprocess.run([python, "-c", probe], capture_output=True,
                                                 text=True, check=True).stdout))
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return out


def median_ratio(numerators, denominators):
    """The median of the per-round ratios numerators[i] / denominators[i], and the ratios."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    return statistics.median(ratios), ratios


def write(name, rounds, summary, extra=None):
    """Writes bench/results/NAME-YYYYMMDD-HHMMSS.json and returns its path."""
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "benchmark": name,
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        # The .sh wrappers name themselves; run directly, the Python command line.
        "command": os.environ.get("DEEPNET_BENCH_COMMAND") or " ".join(sys.argv),
        "commit": commit(),
        "machine": machine(),
        "software": software(),
        "ratio_rule": "median of per-round ratios",
        "rounds": rounds,
        "summary": summary,
    }
    if extra:
        record.update(extra)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}-{now.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"results: {os.path.relpath(path, ROOT)}", file=sys.stderr)
    return path
