#!/usr/bin/env bash
# The bombs and huge shapes of the hardening issue, each run through the deepnet binary under
# /usr/bin/time: exit code, the error line, peak memory (max RSS) and wall time, written as a
# table to docs/hardening/peaks.md (and the console output to docs/hardening/peaks.txt).
# Needs python3 (standard library only) to write the hostile files.
# Usage: scripts/hardening_peaks.sh   (DEEPNET_BIN=path to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DEEPNET_BIN:-}" ]; then
  BIN=$DEEPNET_BIN
else
  cargo build --release
  BIN="${CARGO_TARGET_DIR:-target}/release/deepnet"
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
FIX=tests/fixtures/fashion-mnist-subset
python3 - "$W" <<'PY'
import gzip, os, struct, sys, zlib
w = sys.argv[1]
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data
# 1. A valid 600-image IDX followed by 2 GiB of zeros, gzipped (about 2 MB).
os.makedirs(f"{w}/bomb")
with gzip.open(f"{w}/bomb/train-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
    f.write(idx([600, 28, 28], bytes(600 * 784)))
    zero = bytes(64 << 20)
    for _ in range(32):
        f.write(zero)
with open(f"{w}/bomb/train-labels-idx1-ubyte", "wb") as f:
    f.write(idx([600], bytes(600)))
with open(f"{w}/bomb/t10k-images-idx3-ubyte", "wb") as f:
    f.write(idx([10, 28, 28], bytes(7840)))
with open(f"{w}/bomb/t10k-labels-idx1-ubyte", "wb") as f:
    f.write(idx([10], bytes(10)))
# 2. Test images of another size than the training images.
os.makedirs(f"{w}/mixed")
for p, n, s in [("train", 40, 28), ("t10k", 10, 32)]:
    open(f"{w}/mixed/{p}-images-idx3-ubyte", "wb").write(idx([n, s, s], bytes(n * s * s)))
    open(f"{w}/mixed/{p}-labels-idx1-ubyte", "wb").write(idx([n], bytes(n)))
# 3. Grey PNGs of one column: 1x4000, 1x20000, 1x16,000,000 and 1x2^24.
def png(path, width, height):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    c = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    body = b"".join(c.compress(row * 65536) for _ in range(height // 65536))
    body += c.compress(row * (height % 65536)) + c.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
for h in [4000, 20000, 16_000_000, 1 << 24]:
    png(f"{w}/tall-{h}.png", 1, h)
for cls in ["a", "b"]:
    os.makedirs(f"{w}/folder/{cls}")
    for i in range(4):
        png(f"{w}/folder/{cls}/{i}.png", 8 + i, 8 + (cls == "b"))
# 4. A .npy whose shape product overflows (no data).
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952, 3, 32, 32), }"
hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
open(f"{w}/huge.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
PY
# A small LeNet-5 run and a ResNet-18 in torchvision's format for the predict/infer cases.
"$BIN" train lenet5 --data "$FIX" --epochs 1 --out "$W/run" >/dev/null 2>&1
"$BIN" train resnet18 --data "$W/folder" --image-size 32 --epochs 1 --batch-size 4 \
  --out "$W/r18run" >/dev/null 2>&1
"$BIN" export "$W/r18run" --to "$W/r18.safetensors" >/dev/null
OUT=docs/hardening
mkdir -p "$OUT"
echo "| case | command | exit | peak memory | wall | answer |" > "$OUT/peaks.md"
echo "|---|---|---|---|---|---|" >> "$OUT/peaks.md"
BOMB=$(stat -c %s "$W/bomb/train-images-idx3-ubyte.gz")
echo "the gzip bomb: $BOMB bytes, inflating to 2 GiB + 470,416 bytes" | tee "$OUT/peaks.txt"
case_() { # NAME ARGS...
  local name=$1
  shift
  local shown="deepnet $*"
  shown=${shown//$W/\$W}
  /usr/bin/time -f "%M %e" -o "$W/time" "$BIN" "$@" >"$W/out" 2>"$W/err" && rc=0 || rc=$?
  # /usr/bin/time puts "Command exited with non-zero status N" first when the command fails.
  read -r kb secs < <(tail -n1 "$W/time") || true
  local line
  if [ "$rc" = 0 ]; then
    line="(answered) $(head -n1 "$W/out")"
  else
    line=$(grep -m1 '^error:' "$W/err" || tail -n1 "$W/err" || true)
  fi
  line=${line//$W/\$W}
  {
    echo "\$ $shown"
    sed "s|$W|\$W|g" "$W/err"
    echo "exit $rc, peak ${kb} KB, ${secs} s"
    echo
  } >>"$OUT/peaks.txt"
  echo "| $name | \`$shown\` | $rc | $((kb / 1024)) MB | ${secs} s | ${line//|/\\|} |" >>"$OUT/peaks.md"
  echo "$name: exit $rc, $((kb / 1024)) MB, ${secs} s: $line"
}
case_ "gzip bomb (2 GiB of zeros behind a valid header)" train lenet5 --data "$W/bomb" --epochs 1 --out "$W/r1"
case_ "test images 32x32, training 28x28" train lenet5 --data "$W/mixed" --epochs 1 --out "$W/r2"
case_ "--val-size 0" train lenet5 --data "$FIX" --val-size 0 --epochs 1 --out "$W/r3"
case_ "predict /dev/zero" predict "$W/run" /dev/zero
case_ "infer --input /dev/zero" infer --model lenet5 --weights "$W/run/checkpoint.safetensors" --input /dev/zero --output "$W/o.npy"
case_ "infer, shape product overflows" infer --model lenet5 --weights "$W/run/checkpoint.safetensors" --input "$W/huge.npy" --output "$W/o.npy"
for h in 4000 20000 16000000 16777216; do
  case_ "ImageNet-style predict of a 1x$h PNG" predict --model resnet18 --num-classes 2 --weights "$W/r18.safetensors" "$W/tall-$h.png"
done
case_ "summary lenet5 1x32x32" summary lenet5 --input 1x32x32
case_ "summary lenet5 1x27x27" summary lenet5 --input 1x27x27
case_ "summary resnet18 3x100000x100000" summary resnet18 --input 3x100000x100000
case_ "summary resnet18 --num-classes 4000000000" summary resnet18 --num-classes 4000000000
case_ "summary resnet18 3x4294967295x4294967295" summary resnet18 --input 3x4294967295x4294967295
case_ "summary resnet18 3x18446744073709551615x18446744073709551615" summary resnet18 --input 3x18446744073709551615x18446744073709551615
case_ "gradients, scale 1e40" gradients --curve rnn:normal:1e40 --out "$W/g"
case_ "resume with changed flags" train lenet5 --resume "$W/run" --epochs 2 --lr 0.5 --batch-size 7
case_ "--min-lr above --lr" train lenet5 --data "$FIX" --lr 0.01 --min-lr 0.1 --out "$W/r4"
echo "written: $OUT/peaks.md, $OUT/peaks.txt"
