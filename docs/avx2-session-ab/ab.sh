#!/bin/bash
# usage: ab.sh ROUNDS args...   (alternates base/current cnn_step, prints ratio per round)
R=$1; shift
N=$HOME/.cache/deepnet-target/release/examples/cnn_step; O=$HOME/.cache/deepnet-base/cnn_step-e8fbf53
for i in $(seq $R); do
 a=$(RAYON_NUM_THREADS=2 $O "$@" | tail -1 | python3 -c "import json,sys;print(json.load(sys.stdin)['ms'])")
 b=$(RAYON_NUM_THREADS=2 $N "$@" | tail -1 | python3 -c "import json,sys;print(json.load(sys.stdin)['ms'])")
 echo "$a $b" | awk '{printf "base %.1f cur %.1f ratio %.3f\n",$1,$2,$1/$2}'
done
