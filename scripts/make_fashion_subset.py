#!/usr/bin/env python3
"""Writes the small Fashion-MNIST subset the tests use (tests/fixtures/fashion-mnist-subset).

Takes the first N_TRAIN training and N_TEST test images of the full data set installed by
Debian's `dataset-fashion-mnist` (or any MNIST-format directory given as argv[1]) and writes
them as gzipped IDX files with the standard names. Pure standard library: no PyTorch needed.
Run it only to regenerate the committed fixture on purpose.
"""
import gzip
import os
import struct
import sys

N_TRAIN, N_TEST = 2000, 500
SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
DST = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fashion-mnist-subset")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 8, path
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return list(dims), data[4 + 4 * ndim :]


def write_idx(path, dims, body):
    header = struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 keeps the file byte-identical between runs.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + body)


def find(name):
    for candidate in (name, name + ".gz"):
        p = os.path.join(SRC, candidate)
        if os.path.exists(p):
            return p
    sys.exit(f"{SRC}: no {name}[.gz]")


os.makedirs(DST, exist_ok=True)
for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
    dims, images = read_idx(find(f"{split}-images-idx3-ubyte"))
    _, labels = read_idx(find(f"{split}-labels-idx1-ubyte"))
    size = dims[1] * dims[2]
    write_idx(os.path.join(DST, f"{split}-images-idx3-ubyte.gz"), [n, dims[1], dims[2]], images[: n * size])
    write_idx(os.path.join(DST, f"{split}-labels-idx1-ubyte.gz"), [n], labels[:n])
    counts = [labels[:n].count(bytes([c])) for c in range(10)]
    print(f"{split}: {n} images, per class {counts}")
