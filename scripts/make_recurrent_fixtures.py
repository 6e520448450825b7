"""Writes the parity fixtures of deepnet's recurrent layers to tests/fixtures/recurrent/.

Run through scripts/make_recurrent_fixtures.sh (it makes the PyTorch virtualenv). Every file is a
safetensors file holding, for one case:

- `input` [T, B, I] (time-first), `h0` (and `c0`) [L*D, B, H], `lengths` (as float; absent when
  every sequence is full length);
- `param.<name>`: the weights under PyTorch's names (`weight_ih_l0`, ..., `_reverse`);
- `r_out`, `r_h` (and `r_c`): the random weights of the scalar loss
  L = sum(output * r_out) + sum(h_n * r_h) (+ sum(c_n * r_c));
- `output`, `h_n` (and `c_n`): the expected results;
- `grad.input`, `grad.h0`, (`grad.c0`), `grad.<name>`: dL/d everything.

torch.nn.RNN (tanh, relu), LSTM and GRU (PyTorch's reset-after) are run by torch itself, 2 layers,
bidirectional, with and without lengths (pack_padded_sequence, enforce_sorted=False). The
lecture's GRU (reset-before) and ConvLSTM (Shi et al. 2015, with and without peepholes) have no
torch module: they are written below from the equations once, over an `ops` namespace, and run
twice: in NumPy (the reference values) and in torch (for the gradients, by autograd). The script
asserts the two agree before it writes anything.

The LSTM case also writes lstm.pth: its state dict as torch.save writes it. The LSTM file also
holds torch's clipping results for the same gradients:
`clip.norm_total` (what clip_grad_norm_ returned, max_norm 0.5), `clip_norm.<name>` (the
clipped gradients) and `clip_value.<name>` (clip_grad_value_ with 0.05).
"""

import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "recurrent")
T, B, I, H, L = 5, 3, 3, 4, 2
LENGTHS = [5, 2, 4]  # unsorted on purpose


def np32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def save(name, tensors):
    os.makedirs(OUT, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, name + ".safetensors"))
    print(f"wrote {name}.safetensors ({len(tensors)} tensors)")


def torch_case(name, module, lengths, clip=False):
    torch.manual_seed(0)
    for p in module.parameters():
        torch.nn.init.uniform_(p, -0.6, 0.6)
    is_lstm = isinstance(module, torch.nn.LSTM)
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = torch.randn(L * 2, B, H, requires_grad=True)
    c0 = torch.randn(L * 2, B, H, requires_grad=True)
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), enforce_sorted=False
        )
        out, state = module(packed, (h0, c0) if is_lstm else h0)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    else:
        out, state = module(x, (h0, c0) if is_lstm else h0)
    h_n, c_n = state if is_lstm else (state, None)
    r_out, r_h, r_c = torch.randn_like(out), torch.randn_like(h_n), torch.randn_like(h_n)
    loss = (out * r_out).sum() + (h_n * r_h).sum()
    if is_lstm:
        loss = loss + (c_n * r_c).sum()
    loss.backward()
    t = {
        "input": np32(x),
        "h0": np32(h0),
        "r_out": np32(r_out),
        "r_h": np32(r_h),
        "output": np32(out),
        "h_n": np32(h_n),
        "grad.input": np32(x.grad),
        "grad.h0": np32(h0.grad),
    }
    if is_lstm:
        t.update({"c0": np32(c0), "r_c": np32(r_c), "c_n": np32(c_n), "grad.c0": np32(c0.grad)})
    if lengths is not None:
        t["lengths"] = np.array(lengths, dtype=np.float32)
    for pname, p in module.named_parameters():
        t["param." + pname] = np32(p)
        t["grad." + pname] = np32(p.grad)
    if clip:
        params = [p for _, p in module.named_parameters()]
        saved = [p.grad.clone() for p in params]
        total = torch.nn.utils.clip_grad_norm_(params, max_norm=0.5)
        t["clip.norm_total"] = np.array([float(total)], dtype=np.float32)
        for (pname, p) in module.named_parameters():
            t["clip_norm." + pname] = np32(p.grad)
        for p, g in zip(params, saved):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_value_(params, clip_value=0.05)
        for (pname, p) in module.named_parameters():
            t["clip_value." + pname] = np32(p.grad)
    save(name, t)
    if clip:
        # The same weights as written by torch.save, for the .pth reader's test.
        torch.save(module.state_dict(), os.path.join(OUT, name + ".pth"))
        print(f"wrote {name}.pth")


# ------------------------------------------------------------------------------------------------
# The equations, over an `ops` namespace (NumPy or torch).

def numpy_ops():
    def conv_same(x, w):  # x [B, C, H, W], w [O, C, k, k], "same" padding, stride 1
        k = w.shape[-1]
        p = k // 2
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # [B,C,H,W,k,k]
        return np.einsum("bchwij,ocij->bohw", win, w)

    return types.SimpleNamespace(
        tanh=np.tanh,
        sigmoid=lambda v: 1.0 / (1.0 + np.exp(-v)),
        cat=lambda xs, d: np.concatenate(xs, axis=d),
        stack=lambda xs: np.stack(xs, 0),
        conv=conv_same,
        mask=lambda m, like: np.array(m, dtype=like.dtype),
    )


def torch_ops():
    return types.SimpleNamespace(
        tanh=torch.tanh,
        sigmoid=torch.sigmoid,
        cat=lambda xs, d: torch.cat(xs, d),
        stack=lambda xs: torch.stack(xs, 0),
        conv=lambda x, w: F.conv2d(x, w, padding=w.shape[-1] // 2),
        mask=lambda m, like: torch.tensor(m, dtype=like.dtype),
    )


def gru_reset_before_direction(ops, x, w_ih, w_hh, b_ih, b_hh, h, lengths, reverse):
    """The lecture's GRU (Cho et al. 2014): the reset gate multiplies h_{t-1} before W_hn.
    r = s(W_ir x + b_ir + W_hr h + b_hr); z = s(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn); h' = (1 - z) * n + z * h
    Padded steps (t >= length) keep h and output zero."""
    hid = h.shape[1]
    outs = [None] * x.shape[0]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        xp = x[t] @ w_ih.T + b_ih
        r = ops.sigmoid(xp[:, :hid] + h @ w_hh[:hid].T + b_hh[:hid])
        z = ops.sigmoid(xp[:, hid:2 * hid] + h @ w_hh[hid:2 * hid].T + b_hh[hid:2 * hid])
        n = ops.tanh(xp[:, 2 * hid:] + (r * h) @ w_hh[2 * hid:].T + b_hh[2 * hid:])
        h_new = (1 - z) * n + z * h
        m = ops.mask([[1.0 if t < l else 0.0] for l in lengths], h)
        outs[t] = m * h_new
        h = m * h_new + (1 - m) * h
    return ops.stack(outs), h


def gru_reset_before_stack(ops, x, params, h0, lengths):
    hs = []
    for layer in range(L):
        outs = []
        for d in range(2):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            out, h = gru_reset_before_direction(
                ops, x, params["weight_ih" + sfx], params["weight_hh" + sfx],
                params["bias_ih" + sfx], params["bias_hh" + sfx], h0[2 * layer + d],
                lengths, reverse=bool(d))
            outs.append(out)
            hs.append(h)
        x = ops.cat(outs, 2)
    return x, ops.stack(hs)


def conv_lstm_cell(ops, x, h, c, p, peep):
    """ConvLSTM (Shi et al. 2015), gates i, f, g, o; * is convolution ("same"), o Hadamard:
    i = s(W_xi * X + W_hi * H + W_ci o C + b_i); f = s(W_xf * X + W_hf * H + W_cf o C + b_f)
    C' = f o C + i o tanh(W_xc * X + W_hc * H + b_c)
    o = s(W_xo * X + W_ho * H + W_co o C' + b_o); H' = o o tanh(C')"""
    hid = h.shape[1]
    a = ops.conv(x, p["conv_x.weight"]) + p["conv_x.bias"][None, :, None, None] + ops.conv(h, p["conv_h.weight"])
    ai, af, ag, ao = (a[:, k * hid:(k + 1) * hid] for k in range(4))
    if peep:
        ai = ai + p["w_ci"][None] * c
        af = af + p["w_cf"][None] * c
    i, f = ops.sigmoid(ai), ops.sigmoid(af)
    c = f * c + i * ops.tanh(ag)
    if peep:
        ao = ao + p["w_co"][None] * c
    h = ops.sigmoid(ao) * ops.tanh(c)
    return h, c


def conv_lstm_stack(ops, x, params, h0, c0, layers, peep):
    """x [B, T, C, H, W]; returns the last layer's outputs [B, T, Hc, H, W], h_n and c_n
    [layers, B, Hc, H, W]."""
    hs, cs = [], []
    for layer in range(layers):
        p = {k[len(f"cells.{layer}."):]: v for k, v in params.items() if k.startswith(f"cells.{layer}.")}
        h, c = h0[layer], c0[layer]
        outs = []
        for t in range(x.shape[1]):
            h, c = conv_lstm_cell(ops, x[:, t], h, c, p, peep)
            outs.append(h)
        x = ops.stack(outs).transpose(1, 0, 2, 3, 4) if isinstance(h, np.ndarray) else ops.stack(outs).transpose(0, 1)
        hs.append(h)
        cs.append(c)
    return x, ops.stack(hs), ops.stack(cs)


def equation_case(name, params_np, inputs_np, run, grads_of):
    """Runs `run(ops, params, inputs)` in NumPy and in torch, checks they agree, and saves values,
    the torch gradients of sum(result_k * r_k), and the inputs."""
    ref = run(numpy_ops(), params_np, inputs_np)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in params_np.items()}
    it = {k: torch.tensor(v, requires_grad=k in grads_of) if isinstance(v, np.ndarray) else v
          for k, v in inputs_np.items()}
    res = run(torch_ops(), pt, it)
    rng = np.random.default_rng(1)
    loss = 0
    t = {}
    for (rname, r_np, r_t) in zip(["output", "h_n", "c_n"], ref, res):
        worst = float(np.abs(r_np - np32(r_t)).max())
        assert worst < 1e-5, f"{name}: NumPy and torch disagree on {rname} by {worst}"
        weight = rng.standard_normal(r_np.shape).astype(np.float32)
        loss = loss + (r_t * torch.tensor(weight)).sum()
        t[rname] = r_np
        t[{"output": "r_out", "h_n": "r_h", "c_n": "r_c"}[rname]] = weight
    loss.backward()
    for k, v in it.items():
        if isinstance(v, torch.Tensor):
            t[k] = np32(v)
            if v.grad is not None:
                t["grad." + k] = np32(v.grad)
    for k, v in pt.items():
        t["param." + k] = np32(v)
        t["grad." + k] = np32(v.grad)
    save(name, t)


def gru_reset_before_case(with_lengths):
    rng = np.random.default_rng(2)
    params = {}
    for layer in range(L):
        for sfx in ("", "_reverse"):
            inp = I if layer == 0 else 2 * H
            s = f"_l{layer}{sfx}"
            params["weight_ih" + s] = rng.uniform(-0.6, 0.6, (3 * H, inp)).astype(np.float32)
            params["weight_hh" + s] = rng.uniform(-0.6, 0.6, (3 * H, H)).astype(np.float32)
            params["bias_ih" + s] = rng.uniform(-0.6, 0.6, (3 * H,)).astype(np.float32)
            params["bias_hh" + s] = rng.uniform(-0.6, 0.6, (3 * H,)).astype(np.float32)
    lengths = LENGTHS if with_lengths else [T] * B
    inputs = {
        "input": rng.standard_normal((T, B, I)).astype(np.float32),
        "h0": rng.standard_normal((2 * L, B, H)).astype(np.float32),
    }

    def run(ops, p, x):
        return gru_reset_before_stack(ops, x["input"], p, x["h0"], lengths)

    name = "gru_reset_before" + ("_lengths" if with_lengths else "")
    equation_case(name, params, inputs, run, grads_of={"input", "h0"})
    if with_lengths:
        # The lengths go in the same file.
        from safetensors.numpy import load_file
        path = os.path.join(OUT, name + ".safetensors")
        t = load_file(path)
        t["lengths"] = np.array(lengths, dtype=np.float32)
        save(name, t)


def conv_lstm_case(peep):
    rng = np.random.default_rng(3)
    Bc, Tc, C, Hc, S, K, layers = 2, 4, 2, 3, 5, 3, 2
    params = {}
    for layer in range(layers):
        cin = C if layer == 0 else Hc
        pre = f"cells.{layer}."
        params[pre + "conv_x.weight"] = rng.uniform(-0.3, 0.3, (4 * Hc, cin, K, K)).astype(np.float32)
        params[pre + "conv_x.bias"] = rng.uniform(-0.3, 0.3, (4 * Hc,)).astype(np.float32)
        params[pre + "conv_h.weight"] = rng.uniform(-0.3, 0.3, (4 * Hc, Hc, K, K)).astype(np.float32)
        if peep:
            for g in ("w_ci", "w_cf", "w_co"):
                params[pre + g] = rng.uniform(-0.3, 0.3, (Hc, S, S)).astype(np.float32)
    inputs = {
        "input": rng.standard_normal((Bc, Tc, C, S, S)).astype(np.float32),
        "h0": rng.standard_normal((layers, Bc, Hc, S, S)).astype(np.float32),
        "c0": rng.standard_normal((layers, Bc, Hc, S, S)).astype(np.float32),
    }

    def run(ops, p, x):
        return conv_lstm_stack(ops, x["input"], p, x["h0"], x["c0"], layers, peep)

    equation_case("conv_lstm" + ("_peephole" if peep else ""), params, inputs, run,
                  grads_of={"input", "h0", "c0"})


def main():
    torch.set_default_dtype(torch.float32)
    for lengths in (None, LENGTHS):
        sfx = "_lengths" if lengths else ""
        torch_case("rnn_tanh" + sfx, torch.nn.RNN(I, H, L, nonlinearity="tanh", bidirectional=True), lengths)
        torch_case("rnn_relu" + sfx, torch.nn.RNN(I, H, L, nonlinearity="relu", bidirectional=True), lengths)
        torch_case("lstm" + sfx, torch.nn.LSTM(I, H, L, bidirectional=True), lengths, clip=lengths is None)
        torch_case("gru" + sfx, torch.nn.GRU(I, H, L, bidirectional=True), lengths)
        gru_reset_before_case(lengths is not None)
    conv_lstm_case(peep=True)
    conv_lstm_case(peep=False)
    print(f"torch {torch.__version__}, numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
