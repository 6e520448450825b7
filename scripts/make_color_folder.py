#!/usr/bin/env python3
"""A folder of colour photos-like PNGs from real Fashion-MNIST images, for the image-folder and
transfer-learning runs: one sub-folder per class, images of mixed sizes and aspect ratios,
each garment tinted with a random colour on a random-coloured background. Seeded, stdlib only
(gzip, zlib, struct), so it runs anywhere Python does.

Usage: scripts/make_color_folder.py OUT_DIR [--per-class N] [--classes 0,1,...]
                                     [--split train|test] [--seed S] [--data DIR]
"""
import argparse
import gzip
import os
import random
import struct
import zlib

NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
         "boot"]


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def find(dir_, name):
    for cand in (name + ".gz", name):
        p = os.path.join(dir_, cand)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{dir_}: no {name}(.gz)")


def png(path, w, h, rgb):
    raw = b"".join(b"\x00" + bytes(rgb[y * w * 3:(y + 1) * w * 3]) for y in range(h))

    def chunk(kind, body):
        c = struct.pack(">I", len(body)) + kind + body
        return c + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--classes", default="0,1,7,8,9")
    ap.add_argument("--split", default="train", choices=["train", "test"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    prefix = "train" if a.split == "train" else "t10k"
    (n, rows, cols), pixels = read_idx(find(a.data, f"{prefix}-images-idx3-ubyte"))
    _, labels = read_idx(find(a.data, f"{prefix}-labels-idx1-ubyte"))
    rng = random.Random(a.seed)
    classes = [int(c) for c in a.classes.split(",")]
    for c in classes:
        idx = [i for i in range(n) if labels[i] == c]
        rng.shuffle(idx)
        folder = os.path.join(a.out, NAMES[c])
        os.makedirs(folder, exist_ok=True)
        for k, i in enumerate(idx[:a.per_class]):
            img = pixels[i * rows * cols:(i + 1) * rows * cols]
            w, h = rng.randint(40, 120), rng.randint(40, 120)
            fg = [rng.randint(60, 255) for _ in range(3)]
            bg = [rng.randint(0, 120) for _ in range(3)]
            rgb = bytearray(w * h * 3)
            for y in range(h):
                sy = y * rows // h
                for x in range(w):
                    v = img[sy * cols + x * cols // w] / 255.0
                    for ch in range(3):
                        rgb[(y * w + x) * 3 + ch] = int(bg[ch] * (1 - v) + fg[ch] * v)
            png(os.path.join(folder, f"{a.split}-{k:04d}.png"), w, h, rgb)
    print(f"{a.out}: {len(classes)} classes x {a.per_class} images ({a.split} split, seed {a.seed})")


if __name__ == "__main__":
    main()
