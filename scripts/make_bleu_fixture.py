"""Writes tests/fixtures/bleu/bleu.json: corpus BLEU-1..4 of a fixed set of caption-like
hypotheses against several references each, as sacrebleu computes it (tokenize="none",
smooth_method="none", max_ngram_order 1..4), for deepnet's own BLEU (src/train/bleu.rs).

Run through scripts/make_bleu_fixture.sh. The hypotheses and references are made here from a
seeded random choice over the scene-caption grammar's words, with some hypotheses copied from a
reference, some cut short and some with repeated words, so every part of the formula (clipping,
several references, the brevity penalty with the closest reference length) matters. sacrebleu
takes a fixed number of reference streams: a hypothesis with fewer references repeats its first
(a repeated reference changes neither the clipped counts nor the closest length).
"""

import json
import os
import random

import sacrebleu
from sacrebleu.metrics import BLEU

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "bleu", "bleu.json")
WORDS = "a one left right of above below under and top trouser pullover dress coat sandal shirt sneaker bag boot".split()


def sentence(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def main():
    rng = random.Random(12)
    hyps, refs = [], []
    for i in range(60):
        rs = [sentence(rng, 2, 14) for _ in range(rng.randint(1, 5))]
        kind = i % 4
        if kind == 0:
            h = rs[0]
        elif kind == 1:
            h = " ".join(rs[-1].split()[: max(1, len(rs[-1].split()) // 2)])
        elif kind == 2:
            h = " ".join([rng.choice(WORDS)] * rng.randint(2, 6))
        else:
            h = sentence(rng, 3, 12)
        hyps.append(h)
        refs.append(rs)
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else r[0] for r in refs] for k in range(width)]
    out = {"sacrebleu": sacrebleu.__version__, "hypotheses": hyps, "references": refs, "bleu": []}
    for n in range(1, 5):
        b = BLEU(tokenize="none", smooth_method="none", max_ngram_order=n).corpus_score(hyps, streams)
        out["bleu"].append(b.score / 100.0)
        if n == 4:
            out["precisions"] = [p / 100.0 for p in b.precisions]
            out["brevity_penalty"] = b.bp
            out["hypothesis_length"] = b.sys_len
            out["reference_length"] = b.ref_len
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print("BLEU-1..4:", [round(x * 100, 4) for x in out["bleu"]])


if __name__ == "__main__":
    main()
