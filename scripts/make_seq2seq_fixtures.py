"""Writes the PyTorch parity fixtures of deepnet's sequence-to-sequence network
(src/models/seq2seq.rs, src/nn/) to tests/fixtures/seq2seq/.

Run through scripts/make_seq2seq_fixtures.sh (it makes the PyTorch virtualenv). For each case
(cell, attention) two safetensors files:

- `<case>.weights.safetensors`: every parameter under deepnet's (burn's) field path and in its
  layout (Linear weights [in, out]; recurrent weights as PyTorch's [G*H, I]), as deepnet's
  checkpoint loader reads them;
- `<case>.batch.safetensors`: a fixed teacher-forcing batch (`source` [B, S] letter ids,
  `lengths` [B], `target_in` and `target_out` [B, T] phoneme ids, `mask` [B, T], ids stored as
  float), the teacher-forced loss `loss` (mean cross-entropy per target token) and
  `grad.<path>`: dloss/d every parameter, in deepnet's layout.

The network is written here from the equations of src/nn/decoder.rs's module doc, on torch's own
nn.Embedding, nn.LSTM/nn.GRU (bidirectional, packed by length) and nn.LSTMCell/nn.GRUCell.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "seq2seq")
V_SRC, V_TGT, E, HE, HD, A = 8, 9, 5, 4, 6, 7
B, S, T = 3, 6, 5
LENGTHS = [6, 3, 4]  # unsorted on purpose
TARGET_LENGTHS = [5, 2, 4]  # tokens (end token included)
MASKED = -1.0e9


def param(shape, gen):
    return torch.nn.Parameter((torch.rand(*shape, generator=gen, dtype=torch.float64) - 0.5).float())


def case(name, cell, attention, seed):
    gen = torch.Generator().manual_seed(seed)
    P = {}  # deepnet path -> (parameter, transpose-for-deepnet)
    G = 4 if cell == "lstm" else 3

    def add(path, shape, linear=False):
        p = param(shape, gen)
        P[path] = (p, linear)
        return p

    emb_src = add("embedding.weight", [V_SRC, E])
    enc = {}
    for d in (0, 1):
        for k, shape in (("weight_ih", [G * HE, E]), ("weight_hh", [G * HE, HE]),
                         ("bias_ih", [G * HE]), ("bias_hh", [G * HE])):
            enc[(d, k)] = add(f"encoder_{cell}.cells.{d}.{k}", shape)
    D = 2 * HE
    emb_tgt = add("decoder.embedding.weight", [V_TGT, E])
    bridge_w = add("decoder.bridge.weight", [HD, D], linear=True)  # torch layout [out, in]
    bridge_b = add("decoder.bridge.bias", [HD])
    cell_in = E + {"additive": D, "multiplicative": HD, "none": 0}[attention]
    dec = {}
    for k, shape in (("weight_ih", [G * HD, cell_in]), ("weight_hh", [G * HD, HD]),
                     ("bias_ih", [G * HD]), ("bias_hh", [G * HD])):
        dec[k] = add(f"decoder.{cell}.{k}", shape)
    if attention == "additive":
        key_w = add("decoder.attention.key.weight", [A, D], linear=True)
        key_b = add("decoder.attention.key.bias", [A])
        query_w = add("decoder.attention.query.weight", [A, HD], linear=True)
        v_w = add("decoder.attention.v.weight", [1, A], linear=True)
        out_in = HD + D
    elif attention == "multiplicative":
        key_w = add("decoder.attention.key.weight", [HD, D], linear=True)
        combine_w = add("decoder.combine.weight", [HD, D + HD], linear=True)
        out_in = HD
    else:
        out_in = HD
    out_w = add("decoder.out.weight", [V_TGT, out_in], linear=True)
    out_b = add("decoder.out.bias", [V_TGT])

    # The batch.
    src = torch.randint(1, V_SRC, (B, S), generator=gen)
    for b, l in enumerate(LENGTHS):
        src[b, l:] = 0
    tgt_out = torch.zeros(B, T, dtype=torch.long)
    tgt_in = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T)
    for b, l in enumerate(TARGET_LENGTHS):
        body = torch.randint(3, V_TGT, (l - 1,), generator=gen)
        tgt_out[b, : l - 1] = body
        tgt_out[b, l - 1] = 2  # end token
        tgt_in[b, 0] = 1  # start token
        tgt_in[b, 1:l] = body
        mask[b, :l] = 1.0

    # Encoder: torch's own bidirectional layer, packed by length.
    rnn_cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    rnn = rnn_cls(E, HE, batch_first=True, bidirectional=True)
    for d, suffix in ((0, ""), (1, "_reverse")):
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(rnn, f"{k}_l0{suffix}", enc[(d, k)])
    x = F.embedding(src, emb_src)
    packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    memory, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # [B, S, D]
    h_n = state[0] if cell == "lstm" else state
    summary = torch.cat([h_n[-2], h_n[-1]], 1)  # [B, D]
    pad = torch.zeros(B, S)
    for b, l in enumerate(LENGTHS):
        pad[b, l:] = MASKED

    # Decoder.
    dcell = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(cell_in, HD)
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(dcell, k, dec[k])
    h = torch.tanh(F.linear(summary, bridge_w, bridge_b))
    c = torch.zeros_like(h)
    feed = torch.zeros_like(h)
    if attention == "additive":
        keys = F.linear(memory, key_w, key_b)
    elif attention == "multiplicative":
        keys = F.linear(memory, key_w)

    def attend(q):
        if attention == "additive":
            scores = F.linear(torch.tanh(keys + F.linear(q, query_w)[:, None, :]), v_w)[..., 0]
        else:
            scores = torch.bmm(keys, q[:, :, None])[..., 0]
        alpha = torch.softmax(scores + pad, 1)
        return torch.bmm(alpha[:, None, :], memory)[:, 0, :]

    def step(x, h, c):
        if cell == "lstm":
            return dcell(x, (h, c))
        return dcell(x, h), c

    feats = []
    for t in range(T):
        e = F.embedding(tgt_in[:, t], emb_tgt)
        if attention == "additive":
            ctx = attend(h)
            h, c = step(torch.cat([e, ctx], 1), h, c)
            f = torch.cat([h, ctx], 1)
        elif attention == "multiplicative":
            h, c = step(torch.cat([e, feed], 1), h, c)
            ctx = attend(h)
            feed = torch.tanh(F.linear(torch.cat([ctx, h], 1), combine_w))
            f = feed
        else:
            h, c = step(e, h, c)
            f = h
        feats.append(f)
    logits = F.linear(torch.stack(feats, 1), out_w, out_b)  # [B, T, V]
    logp = torch.log_softmax(logits, 2)
    picked = logp.gather(2, tgt_out[:, :, None])[..., 0]
    loss = -(picked * mask).sum() / mask.sum()
    loss.backward()

    def deepnet_layout(t, linear):
        t = t.detach().numpy()
        return t.T.copy() if linear else t

    weights = {k: deepnet_layout(p, lin) for k, (p, lin) in P.items()}
    batch = {
        "source": src.float().numpy(),
        "lengths": np.array(LENGTHS, dtype=np.float32),
        "target_in": tgt_in.float().numpy(),
        "target_out": tgt_out.float().numpy(),
        "mask": mask.numpy(),
        "loss": np.array([loss.item()], dtype=np.float32),
    }
    for k, (p, lin) in P.items():
        batch[f"grad.{k}"] = deepnet_layout(p.grad, lin)
    os.makedirs(OUT, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
              os.path.join(OUT, f"{name}.weights.safetensors"))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in batch.items()},
              os.path.join(OUT, f"{name}.batch.safetensors"))
    print(f"{name}: loss {loss.item():.6f}, {len(weights)} parameters")


if __name__ == "__main__":
    case("lstm_additive", "lstm", "additive", 1)
    case("lstm_multiplicative", "lstm", "multiplicative", 2)
    case("lstm_none", "lstm", "none", 3)
    case("gru_additive", "gru", "additive", 4)
