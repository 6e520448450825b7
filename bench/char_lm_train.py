#!/usr/bin/env python3
"""Character language model training step: deepnet (`deepnet lm-train`'s model) vs PyTorch,
same model, batch, window, optimizer, 2 threads, side by side in one run.

One step = one truncated-BPTT window: embedding (vocab 100 -> 64) -> 2-layer LSTM (or GRU) with
256 hidden -> linear to the vocabulary at every step, cross-entropy against the next id, backward,
global-norm clipping at 1, Adam (lr 2e-3), the state carried into the next window and detached.
Batch 32 streams, window 100 characters: 3,200 characters a step. Each configuration is timed in
rounds that alternate the two implementations; each number is the median step of one process
(after two warm-up steps); the table gives the medians over rounds and the median of the
per-round speed ratios (PyTorch time / deepnet time: above 1 means deepnet is faster), and
characters per second. Writes bench/results/char_lm_train-DATE.json.

Usage: bench/char_lm_train.sh [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_BIN = os.environ.get("DEEPNET_CHAR_LM_STEP",
                          os.path.join(ROOT, "target", "release", "examples", "char_lm_step"))
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", sys.executable)
BATCH, BPTT, VOCAB, EMBED, HIDDEN, LAYERS, THREADS = 32, 100, 100, 64, 256, 2, 2

TORCH_SIDE = r"""
import json, sys, time
import torch
torch.set_num_threads(%(threads)d)
torch.manual_seed(0)
cell, steps = sys.argv[1], int(sys.argv[2])
B, T, V, E, H, L = %(batch)d, %(bptt)d, %(vocab)d, %(embed)d, %(hidden)d, %(layers)d

class CharLm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E)
        self.rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(E, H, L, batch_first=True)
        self.head = torch.nn.Linear(H, V)
    def forward(self, x, state):
        out, state = self.rnn(self.embedding(x), state)
        return self.head(out), state

model = CharLm()
opt = torch.optim.Adam(model.parameters(), lr=2e-3, eps=1e-8)
x = 12345
ids = []
for _ in range(B * (T + 1)):
    x = (x * 6364136223846793005 + 1442695040888963407) %% (1 << 64)
    ids.append((x >> 33) %% V)
window = torch.tensor(ids).view(B, T + 1)
state = None
times = []
for i in range(steps + 2):
    t0 = time.perf_counter()
    logits, s = model(window[:, :T], state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, V), window[:, 1:].reshape(B * T))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    state = tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()
    if i >= 2:
        times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(json.dumps({"ms_per_step": times[len(times) // 2]}))
""" % dict(threads=THREADS, batch=BATCH, bptt=BPTT, vocab=VOCAB, embed=EMBED, hidden=HIDDEN, layers=LAYERS)


def run_torch(cell, steps):
    out = subprocess.run([TORCH_PYTHON, "-c", TORCH_SIDE, cell, str(steps)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def run_rust(cell, steps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([STEP_BIN, cell, str(steps), str(BATCH), str(BPTT), str(VOCAB), str(EMBED),
                          str(HIDDEN), str(LAYERS)], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cells = ["lstm", "gru"]
    res_by = {c: {"deepnet": [], "pytorch": []} for c in cells}
    per_round = []
    for r in range(rounds):
        row = {}
        for cell in cells:
            res = res_by[cell]
            res["deepnet"].append(run_rust(cell, 10))
            res["pytorch"].append(run_torch(cell, 10))
            row[cell] = {k: v[-1] for k, v in res.items()}
            print(f"round {r + 1}: {cell}: deepnet {res['deepnet'][-1]:.1f} ms, "
                  f"PyTorch {res['pytorch'][-1]:.1f} ms", file=sys.stderr)
        per_round.append(row)
    chars = BATCH * BPTT
    print(f"\nCharacter-LM training step (window {BPTT}, batch {BATCH}, vocab {VOCAB}, embed {EMBED}, "
          f"{LAYERS}x{HIDDEN}, Adam, clip 1), {THREADS} threads, {rounds} rounds, medians; ratios: median of "
          f"per-round ratios; {results.machine()['cpu_model']}\n")
    print("| cell | deepnet ms | deepnet chars/s | PyTorch ms | PyTorch chars/s | speed vs PyTorch (per round) |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for cell, res in res_by.items():
        med = {k: statistics.median(v) for k, v in res.items()}
        ratio = results.median_ratio(res["pytorch"], res["deepnet"])
        summary[cell] = {
            "ms_median": med,
            "chars_per_s_median": {k: chars / (v / 1e3) for k, v in med.items()},
            "speed_vs_pytorch": {"median": ratio[0], "per_round": ratio[1]},
        }
        print(f"| {cell.upper()} | {med['deepnet']:.1f} | {chars / (med['deepnet'] / 1e3):,.0f} | "
              f"{med['pytorch']:.1f} | {chars / (med['pytorch'] / 1e3):,.0f} | "
              f"{ratio[0]:.2f}x ({', '.join(f'{x:.2f}' for x in ratio[1])}) |")
    results.write("char_lm_train", per_round, summary,
                  {"config": {"batch": BATCH, "bptt": BPTT, "vocab": VOCAB, "embed": EMBED, "hidden": HIDDEN,
                              "layers": LAYERS, "threads": THREADS, "rounds": rounds}})


if __name__ == "__main__":
    main()
