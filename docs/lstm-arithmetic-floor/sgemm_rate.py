"""The machine's single-precision GEMM rate as PyTorch (MKL) reaches it on 2 threads, and on one
thread for the LSTM's per-step product at hidden 256 (one thread's 16 rows of the batch):
the yardstick for bench/rnn_train's LSTM rows. Run with the bench virtualenv's python:
$(scripts/torch_venv.sh) docs/lstm-arithmetic-floor/sgemm_rate.py"""
import time

import torch


def rate(a, b, reps):
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / times[len(times) // 2] / 1e9


torch.manual_seed(0)
torch.set_num_threads(2)
for n in (1024, 2048):
    print(f"{n}x{n}x{n}, 2 threads: {rate(torch.randn(n, n), torch.randn(n, n), 7):.1f} GFLOP/s")
torch.set_num_threads(1)
print(f"16x256 . 256x1024, 1 thread: {rate(torch.randn(16, 256), torch.randn(256, 1024), 2001):.1f} GFLOP/s")
