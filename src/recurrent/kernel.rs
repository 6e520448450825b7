//! The fused recurrent kernel: one layer, one direction, the whole sequence, forward and
//! backward, on f32 slices. The burn op in [`super::op`] wraps it.
//!
//! Why a kernel of our own: on burn-flex a step-by-step LSTM built from burn ops runs at 0.23x
//! PyTorch's speed (../shared/PERFORMANCE.md): every step allocates, activations call scalar
//! libm, and slicing a precomputed input projection makes the backward materialise full-size
//! gradients per step. Here:
//!
//! - the input projection of the whole sequence is one GEMM before the time loop
//!   (`XP = X · W_ihᵀ`, `[T·B, G·H]`); only `h_{t-1} · W_hhᵀ` (all gates at once) runs per
//!   step, on weights packed once per call ([`crate::ops::packed_gemm`]);
//! - gate activations are vectorisable loops over contiguous rows (rational tanh, σ(x) =
//!   ½·tanh(x/2) + ½), accurate to a few ulp;
//! - the backward walks the time loop once to get the pre-activation gradients `dXP`, `dHP`
//!   and `∂L/∂h_{t-1} = dHP_t · W_hh`, then computes `∂L/∂W_ih = dXPᵀ · X`,
//!   `∂L/∂W_hh = dHPᵀ · H_prev` and `∂L/∂X = dXP · W_ih` as three large GEMMs over the whole
//!   sequence.
//!
//! Layout: time-major, row-major. `x [T, B, I]`, `w_ih [G·H, I]`, `w_hh [G·H, H]` (PyTorch's
//! layout and gate order), biases `[G·H]`, states `[B, H]`. The output is packed as
//! `[T + 2, B, H]`: the outputs of the T steps, then the final `h`, then the final `c` (`c0`
//! unchanged for cells without a cell state).
//!
//! Variable lengths (PyTorch's packed-sequence semantics): row `b` takes part in step `t` only
//! if `t < lengths[b]`; elsewhere its output is zero and its state passes through unchanged. For
//! the reverse direction the time loop runs from `T - 1` down to 0, so a row's reverse pass
//! starts at its own last valid step.

use rayon::prelude::*;

use super::CellKind;
use crate::ops::fast_math::{sigmoid, tanh};
use crate::ops::gemm::{matmul, Mat};
use crate::ops::packed_gemm::{gemm_packed, PackedB};
use crate::ops::select::vectorized;

/// Sizes and options of one kernel call.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub kind: CellKind,
    pub t: usize,
    pub b: usize,
    pub i: usize,
    pub h: usize,
    pub reverse: bool,
    /// Valid steps per row, each in `1..=t`.
    pub lengths: Vec<usize>,
}

impl Spec {
    /// Gates `G`: rows of `w_ih` per hidden unit.
    pub fn gates(&self) -> usize {
        self.kind.gates()
    }
    fn gh(&self) -> usize {
        self.gates() * self.h
    }
    /// The time index of processing step `s`.
    fn time(&self, s: usize) -> usize {
        if self.reverse {
            self.t - 1 - s
        } else {
            s
        }
    }
    fn active(&self, t: usize, row: usize) -> bool {
        t < self.lengths[row]
    }
    /// Length of the workspace the forward saves for the backward: the gate activations
    /// `[T, B, G·H]`, the state entering each step `[T, B, H]`, and one kind-specific
    /// `[T, B, H]` (LSTM: `c_{t-1}`; reset-after GRU: `W_hn·h_{t-1} + b_hn`; reset-before GRU:
    /// `r ⊙ h_{t-1}`).
    pub fn workspace_len(&self) -> usize {
        self.t * self.b * (self.gh() + 2 * self.h)
    }
}

/// The inputs of a kernel call, as slices.
pub(crate) struct Inputs<'a> {
    pub x: &'a [f32],
    pub w_ih: &'a [f32],
    pub w_hh: &'a [f32],
    pub b_ih: &'a [f32],
    pub b_hh: &'a [f32],
    pub h0: &'a [f32],
    pub c0: &'a [f32],
}

/// Gradients with respect to every input of a kernel call.
pub(crate) struct Grads {
    pub x: Vec<f32>,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
}

// ---------------------------------------------------------------------------------------------
// Activations

#[inline(always)]
fn tanh_in_place(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh(*x));
}

#[inline(always)]
fn sigmoid_in_place(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = sigmoid(*x));
}

// ---------------------------------------------------------------------------------------------
// Threads: the rows of a batch are independent sequences, so each thread runs the whole time
// loop for its own rows; there is no synchronisation per step.

/// Minimum rows per thread: below this, splitting costs more than it saves.
const MIN_ROWS_PER_CHUNK: usize = 4;

/// Row ranges `[bounds[c], bounds[c + 1])`, one per thread.
fn chunk_bounds(b: usize) -> Vec<usize> {
    let chunks = rayon::current_num_threads()
        .min(b.div_ceil(MIN_ROWS_PER_CHUNK))
        .max(1);
    (0..=chunks).map(|c| c * b / chunks).collect()
}

/// Splits `blocks` consecutive `[B, width]` blocks of `buf` by row chunks: `out[c][block]` is
/// chunk `c`'s rows of that block.
fn split_rows<'a>(
    buf: &'a mut [f32],
    blocks: usize,
    b: usize,
    width: usize,
    bounds: &[usize],
) -> Vec<Vec<&'a mut [f32]>> {
    let chunks = bounds.len() - 1;
    let mut out: Vec<Vec<&'a mut [f32]>> =
        (0..chunks).map(|_| Vec::with_capacity(blocks)).collect();
    if b * width == 0 {
        return out;
    }
    for block in buf.chunks_mut(b * width).take(blocks) {
        let mut rest = block;
        for (c, part) in out.iter_mut().enumerate() {
            let (head, tail) =
                std::mem::take(&mut rest).split_at_mut((bounds[c + 1] - bounds[c]) * width);
            part.push(head);
            rest = tail;
        }
    }
    out
}

/// The recurrent weights packed for the per-step products.
struct PackedWeights {
    /// Forward: `W_hh[:k]ᵀ` (`k` = all rows, or `r, z` for the reset-before GRU).
    hh_t: PackedB,
    /// Forward, reset-before GRU: `W_hnᵀ`.
    hn_t: Option<PackedB>,
}

// ---------------------------------------------------------------------------------------------
// Forward

/// One thread's rows of the forward's outputs: per-time-step blocks.
struct ForwardChunk<'a> {
    r0: usize,
    rows: usize,
    /// `T + 2` blocks of `[rows, H]`: outputs, final h, final c.
    out: Vec<&'a mut [f32]>,
    /// `T` blocks of `[rows, G·H]` (empty without `save`).
    acts: Vec<&'a mut [f32]>,
    /// `T` blocks of `[rows, H]`: `h_{t-1}`.
    hprev: Vec<&'a mut [f32]>,
    /// `T` blocks of `[rows, H]`: the kind-specific saved state.
    extra: Vec<&'a mut [f32]>,
}

/// Runs the layer over the sequence. Returns the packed output `[T + 2, B, H]` and, with
/// `save`, the workspace for [`backward`] (empty otherwise).
pub(crate) fn forward(s: &Spec, inp: &Inputs<'_>, save: bool) -> (Vec<f32>, Vec<f32>) {
    let (t_len, b, h, gh) = (s.t, s.b, s.h, s.gh());
    let mut packed = vec![0f32; (t_len + 2) * b * h];
    let mut ws = if save {
        vec![0f32; s.workspace_len()]
    } else {
        Vec::new()
    };

    // XP = X · W_ihᵀ   // [T·B, G·H]; b_ih joins b_hh in the per-step product's bias.
    let mut xp = vec![0f32; t_len * b * gh];
    matmul(
        t_len * b,
        gh,
        s.i,
        &mut xp,
        Mat::rows(inp.x, s.i),
        Mat::transposed(inp.w_ih, s.i),
        false,
        true,
    );
    let weights = if s.kind == CellKind::GruResetBefore {
        PackedWeights {
            hh_t: PackedB::from_transposed(inp.w_hh, 2 * h, h, h),
            hn_t: Some(PackedB::from_transposed(&inp.w_hh[2 * h * h..], h, h, h)),
        }
    } else {
        PackedWeights {
            hh_t: PackedB::from_transposed(inp.w_hh, gh, h, h),
            hn_t: None,
        }
    };

    let bounds = chunk_bounds(b);
    let out = split_rows(&mut packed, t_len + 2, b, h, &bounds);
    let (mut acts, mut hprev, mut extra) = if save {
        let (a, states) = ws.split_at_mut(t_len * b * gh);
        let (hp, ex) = states.split_at_mut(t_len * b * h);
        (
            split_rows(a, t_len, b, gh, &bounds),
            split_rows(hp, t_len, b, h, &bounds),
            split_rows(ex, t_len, b, h, &bounds),
        )
    } else {
        let none = || {
            (0..bounds.len() - 1)
                .map(|_| Vec::new())
                .collect::<Vec<_>>()
        };
        (none(), none(), none())
    };
    let chunks: Vec<ForwardChunk<'_>> = out
        .into_iter()
        .enumerate()
        .map(|(c, out)| ForwardChunk {
            r0: bounds[c],
            rows: bounds[c + 1] - bounds[c],
            out,
            acts: std::mem::take(&mut acts[c]),
            hprev: std::mem::take(&mut hprev[c]),
            extra: std::mem::take(&mut extra[c]),
        })
        .collect();
    chunks
        .into_par_iter()
        .for_each(|chunk| vectorized(|| forward_rows(s, inp, &xp, &weights, chunk, save)));
    (packed, ws)
}

/// The time loop for one chunk of rows.
#[inline(always)]
fn forward_rows(
    s: &Spec,
    inp: &Inputs<'_>,
    xp: &[f32],
    weights: &PackedWeights,
    mut ch: ForwardChunk<'_>,
    save: bool,
) {
    let (t_len, b, h, gh) = (s.t, s.b, s.h, s.gh());
    let (r0, rows) = (ch.r0, ch.rows);
    let active = |t: usize, r: usize| s.active(t, r0 + r);
    let mut hs = inp.h0[r0 * h..(r0 + rows) * h].to_vec(); // [rows, H]
    let mut cs = inp.c0[r0 * h..(r0 + rows) * h].to_vec(); // [rows, H]
    let mut hprev = vec![0f32; rows * h];
    let mut hp = vec![0f32; rows * gh]; // h_{t-1} · W_hhᵀ + b_hh   // [rows, G·H]
    let mut rh = vec![0f32; rows * h]; // reset-before GRU: r ⊙ h_{t-1}
    let mut hpn = vec![0f32; rows * h]; // reset-before GRU: (r ⊙ h_{t-1}) · W_hnᵀ + b_hn
    let mut gates = vec![0f32; gh]; // one row's activations
    let k_hh = if s.kind == CellKind::GruResetBefore {
        2 * h
    } else {
        gh
    };
    // The bias of the per-step product: b_hh + b_ih, except for a GRU's n gate, where r
    // multiplies the recurrent part only (b_in is added in the gate's formula).
    let mut bias: Vec<f32> = inp.b_hh.iter().zip(inp.b_ih).map(|(x, y)| x + y).collect();
    let b_in: &[f32] = if matches!(s.kind, CellKind::Gru | CellKind::GruResetBefore) {
        bias[2 * h..].copy_from_slice(&inp.b_hh[2 * h..]);
        &inp.b_ih[2 * h..]
    } else {
        &[]
    };

    for step in 0..t_len {
        let t = s.time(step);
        hprev.copy_from_slice(&hs);
        if save {
            ch.hprev[t].copy_from_slice(&hs);
            if s.kind == CellKind::Lstm {
                ch.extra[t].copy_from_slice(&cs);
            }
        }
        // hp[:, :k] = h_{t-1} · W_hh[:k]ᵀ + b_hh[:k]
        for row in hp.chunks_mut(gh) {
            row[..k_hh].copy_from_slice(&bias[..k_hh]);
        }
        gemm_packed(rows, &hprev, h, &weights.hh_t, &mut hp, gh, true);

        let xp_t = &xp[(t * b + r0) * gh..(t * b + r0 + rows) * gh];
        let mut any_active = false;
        for r in 0..rows {
            if !active(t, r) {
                continue;
            }
            any_active = true;
            let xpr = &xp_t[r * gh..(r + 1) * gh];
            let hpr = &hp[r * gh..(r + 1) * gh];
            let hr = &mut hs[r * h..(r + 1) * h];
            let cr = &mut cs[r * h..(r + 1) * h];
            match s.kind {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    for ((g, a), c) in gates.iter_mut().zip(xpr).zip(hpr) {
                        *g = a + c;
                    }
                    if s.kind == CellKind::RnnTanh {
                        tanh_in_place(&mut gates);
                    } else {
                        gates.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    hr.copy_from_slice(&gates);
                }
                CellKind::Lstm => {
                    for ((g, a), c) in gates.iter_mut().zip(xpr).zip(hpr) {
                        *g = a + c;
                    }
                    sigmoid_in_place(&mut gates[..2 * h]);
                    tanh_in_place(&mut gates[2 * h..3 * h]);
                    sigmoid_in_place(&mut gates[3 * h..]);
                    let (i, rest) = gates.split_at(h);
                    let (f, rest) = rest.split_at(h);
                    let (g, o) = rest.split_at(h);
                    for j in 0..h {
                        let c = f[j] * cr[j] + i[j] * g[j];
                        cr[j] = c;
                        hr[j] = c; // tanh and o applied below, vectorised
                    }
                    tanh_in_place(hr);
                    hr.iter_mut().zip(o).for_each(|(v, o)| *v *= o);
                }
                CellKind::Gru => {
                    for j in 0..2 * h {
                        gates[j] = xpr[j] + hpr[j];
                    }
                    sigmoid_in_place(&mut gates[..2 * h]);
                    for j in 0..h {
                        gates[2 * h + j] = xpr[2 * h + j] + b_in[j] + gates[j] * hpr[2 * h + j];
                    }
                    tanh_in_place(&mut gates[2 * h..]);
                    let (z, n) = (&gates[h..2 * h], &gates[2 * h..]);
                    for j in 0..h {
                        hr[j] = (1.0 - z[j]) * n[j] + z[j] * hr[j];
                    }
                }
                CellKind::GruResetBefore => {
                    for j in 0..2 * h {
                        gates[j] = xpr[j] + hpr[j];
                    }
                    sigmoid_in_place(&mut gates[..2 * h]);
                    // Stash the gates; n needs the product (r ⊙ h) · W_hnᵀ of all rows first.
                    hp[r * gh..r * gh + 2 * h].copy_from_slice(&gates[..2 * h]);
                    for j in 0..h {
                        rh[r * h + j] = gates[j] * hr[j];
                    }
                }
            }
            if s.kind != CellKind::GruResetBefore {
                ch.out[t][r * h..(r + 1) * h].copy_from_slice(hr);
                if save {
                    ch.acts[t][r * gh..(r + 1) * gh].copy_from_slice(&gates);
                }
            }
        }
        if s.kind == CellKind::GruResetBefore && any_active {
            // hpn = (r ⊙ h_{t-1}) · W_hnᵀ + b_hn
            for row in hpn.chunks_mut(h) {
                row.copy_from_slice(&inp.b_hh[2 * h..]);
            }
            if let Some(hn_t) = &weights.hn_t {
                gemm_packed(rows, &rh, h, hn_t, &mut hpn, h, true);
            }
            for r in (0..rows).filter(|&r| active(t, r)) {
                let xpr = &xp_t[r * gh..(r + 1) * gh];
                gates[..2 * h].copy_from_slice(&hp[r * gh..r * gh + 2 * h]);
                for j in 0..h {
                    gates[2 * h + j] = xpr[2 * h + j] + b_in[j] + hpn[r * h + j];
                }
                tanh_in_place(&mut gates[2 * h..]);
                let hr = &mut hs[r * h..(r + 1) * h];
                let (z, n) = (&gates[h..2 * h], &gates[2 * h..]);
                for j in 0..h {
                    hr[j] = (1.0 - z[j]) * n[j] + z[j] * hr[j];
                }
                ch.out[t][r * h..(r + 1) * h].copy_from_slice(hr);
                if save {
                    ch.acts[t][r * gh..(r + 1) * gh].copy_from_slice(&gates);
                }
            }
        }
        if save {
            match s.kind {
                CellKind::Gru => {
                    for r in 0..rows {
                        ch.extra[t][r * h..(r + 1) * h]
                            .copy_from_slice(&hp[r * gh + 2 * h..(r + 1) * gh]);
                    }
                }
                CellKind::GruResetBefore => ch.extra[t].copy_from_slice(&rh),
                _ => {}
            }
        }
    }
    ch.out[t_len].copy_from_slice(&hs);
    // Cells without a cell state pass c0 through unchanged.
    ch.out[t_len + 1].copy_from_slice(&cs);
}

// ---------------------------------------------------------------------------------------------
// Backward

/// One thread's rows of the backward's outputs.
struct BackwardChunk<'a> {
    r0: usize,
    rows: usize,
    /// `T` blocks of `[rows, G·H]`.
    dxp: Vec<&'a mut [f32]>,
    /// `T` blocks of `[rows, G·H]` (empty when `dHP = dXP`).
    dhp: Vec<&'a mut [f32]>,
    /// `[rows, H]`.
    dh0: &'a mut [f32],
    /// `[rows, H]`.
    dc0: &'a mut [f32],
}

/// The recurrent weights packed for the backward's per-step products.
struct PackedBackward {
    /// `W_hh[:k]` (`k` = all rows, or `r, z` for the reset-before GRU): `dHP · W_hh`.
    hh: PackedB,
    /// Reset-before GRU: `W_hn`.
    hn: Option<PackedB>,
}

/// Gradients of a scalar loss with respect to all inputs, given `dpacked` (`∂L/∂` the packed
/// output `[T + 2, B, H]`) and the workspace saved by [`forward`].
///
/// Per step, with `d = ∂L/∂h_t` (from the output and from step `t + 1`):
/// - RNN: `dA = d ⊙ act'(A)`;
/// - LSTM: `dC = ∂L/∂c_t + d ⊙ o ⊙ (1 − tanh²c_t)`, `di = dC ⊙ g`, `df = dC ⊙ c_{t-1}`,
///   `dg = dC ⊙ i`, `do = d ⊙ tanh c_t`, each times its activation's derivative;
///   `∂L/∂c_{t-1} = dC ⊙ f`;
/// - GRU: `dn = d ⊙ (1 − z)`, `dz = d ⊙ (h_{t-1} − n)`, `∂L/∂h_{t-1} ∋ d ⊙ z`; reset-after:
///   `dr = dn' ⊙ (W_hn h_{t-1} + b_hn)`; reset-before: `dr = (dn' · W_hn) ⊙ h_{t-1}`.
///
/// With `need_x` false (the input is data, or an earlier layer's output that needs no
/// gradient), `∂L/∂X` is not computed and `Grads::x` is empty.
pub(crate) fn backward(
    s: &Spec,
    inp: &Inputs<'_>,
    ws: &[f32],
    dpacked: &[f32],
    need_x: bool,
) -> Grads {
    let (t_len, b, h, gh, isz) = (s.t, s.b, s.h, s.gh(), s.i);
    let (bh, tb) = (b * h, t_len * b);
    let hprev_all = &ws[tb * gh..tb * gh + tb * h]; // [T, B, H]
    let extra_all = &ws[tb * gh + tb * h..]; // [T, B, H]
    let separate_dhp = matches!(s.kind, CellKind::Gru | CellKind::GruResetBefore);
    let mut dxp = vec![0f32; tb * gh]; // ∂L/∂(X·W_ihᵀ + b_ih)   // [T, B, G·H]
    let mut dhp = if separate_dhp {
        vec![0f32; tb * gh] // ∂L/∂(h·W_hhᵀ + b_hh)   // [T, B, G·H]
    } else {
        Vec::new() // the same as dxp
    };
    let mut dh0 = vec![0f32; bh];
    let mut dc0 = vec![0f32; bh];
    // Rows of W_hh that multiply h_{t-1} itself (reset-before GRU: only r and z).
    let k_hh = if s.kind == CellKind::GruResetBefore {
        2 * h
    } else {
        gh
    };
    let weights = PackedBackward {
        hh: PackedB::from_rows(inp.w_hh, k_hh, h, h),
        hn: (s.kind == CellKind::GruResetBefore)
            .then(|| PackedB::from_rows(&inp.w_hh[2 * h * h..], h, h, h)),
    };

    let bounds = chunk_bounds(b);
    let mut dxp_parts = split_rows(&mut dxp, t_len, b, gh, &bounds);
    let mut dhp_parts = if separate_dhp {
        split_rows(&mut dhp, t_len, b, gh, &bounds)
    } else {
        (0..bounds.len() - 1).map(|_| Vec::new()).collect()
    };
    let mut dh0_parts = split_rows(&mut dh0, 1, b, h, &bounds);
    let mut dc0_parts = split_rows(&mut dc0, 1, b, h, &bounds);
    let chunks: Vec<BackwardChunk<'_>> = (0..bounds.len() - 1)
        .map(|c| BackwardChunk {
            r0: bounds[c],
            rows: bounds[c + 1] - bounds[c],
            dxp: std::mem::take(&mut dxp_parts[c]),
            dhp: std::mem::take(&mut dhp_parts[c]),
            dh0: dh0_parts[c].pop().unwrap_or_default(),
            dc0: dc0_parts[c].pop().unwrap_or_default(),
        })
        .collect();
    chunks
        .into_par_iter()
        .for_each(|chunk| vectorized(|| backward_rows(s, ws, dpacked, &weights, chunk)));

    let dhp_all: &[f32] = if separate_dhp { &dhp } else { &dxp };
    // ∂L/∂X = dXP · W_ih   // [T·B, I]
    let mut dx = Vec::new();
    if need_x {
        dx = vec![0f32; tb * isz];
        matmul(
            tb,
            isz,
            gh,
            &mut dx,
            Mat::rows(&dxp, gh),
            Mat::rows(inp.w_ih, isz),
            false,
            true,
        );
    }
    // ∂L/∂W_ih = dXPᵀ · X   // [G·H, I]
    let mut dw_ih = vec![0f32; gh * isz];
    matmul(
        gh,
        isz,
        tb,
        &mut dw_ih,
        Mat::transposed(&dxp, gh),
        Mat::rows(inp.x, isz),
        false,
        true,
    );
    // ∂L/∂W_hh = dHPᵀ · H_prev   // [G·H, H]; reset-before GRU: the n rows see r ⊙ h_{t-1}.
    let mut dw_hh = vec![0f32; gh * h];
    matmul(
        k_hh,
        h,
        tb,
        &mut dw_hh[..k_hh * h],
        Mat::transposed(dhp_all, gh),
        Mat::rows(hprev_all, h),
        false,
        true,
    );
    if s.kind == CellKind::GruResetBefore {
        matmul(
            h,
            h,
            tb,
            &mut dw_hh[2 * h * h..],
            Mat::strided(&dhp_all[2 * h..], 1, gh),
            Mat::rows(extra_all, h),
            false,
            true,
        );
    }
    let column_sums = |m: &[f32]| {
        let mut sums = vec![0f32; gh];
        for row in m.chunks(gh) {
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        sums
    };
    Grads {
        x: dx,
        w_ih: dw_ih,
        w_hh: dw_hh,
        b_ih: column_sums(&dxp),
        b_hh: column_sums(dhp_all),
        h0: dh0,
        c0: dc0,
    }
}

/// The backward time loop for one chunk of rows.
#[inline(always)]
fn backward_rows(
    s: &Spec,
    ws: &[f32],
    dpacked: &[f32],
    weights: &PackedBackward,
    mut ch: BackwardChunk<'_>,
) {
    let (t_len, b, h, gh) = (s.t, s.b, s.h, s.gh());
    let (r0, rows) = (ch.r0, ch.rows);
    let (rh, tb) = (rows * h, t_len * b);
    let active = |t: usize, r: usize| s.active(t, r0 + r);
    let acts = &ws[..tb * gh]; // [T, B, G·H]
    let hprev_all = &ws[tb * gh..tb * gh + tb * h]; // [T, B, H]
    let extra_all = &ws[tb * gh + tb * h..]; // [T, B, H]
                                             // Chunk's rows of time block t of a [·, B, width] array.
    let block = |t: usize, width: usize| (t * b + r0) * width..(t * b + r0 + rows) * width;
    let separate_dhp = !ch.dhp.is_empty();
    let mut dh = dpacked[block(t_len, h)].to_vec();
    let mut dc = dpacked[block(t_len + 1, h)].to_vec();
    let mut direct = vec![0f32; rh]; // the part of ∂L/∂h_{t-1} that bypasses W_hh
    let mut dh_new = vec![0f32; rh];
    let mut drh = vec![0f32; rh]; // reset-before GRU: ∂L/∂(r ⊙ h_{t-1})

    for step in (0..t_len).rev() {
        let t = s.time(step);
        let dout = &dpacked[block(t, h)];
        let acts_t = &acts[block(t, gh)];
        let hprev_t = &hprev_all[block(t, h)];
        let extra_t = &extra_all[block(t, h)];
        let (dxp_part, dhp_part) = (&mut ch.dxp, &mut ch.dhp);
        let dxp_t: &mut [f32] = dxp_part[t];
        let dhp_t: &mut [f32] = if separate_dhp { dhp_part[t] } else { &mut [] };
        let mut any_active = false;
        for r in 0..rows {
            if !active(t, r) {
                continue;
            }
            any_active = true;
            let a = &acts_t[r * gh..(r + 1) * gh];
            let dxr = &mut dxp_t[r * gh..(r + 1) * gh];
            let (dhr, dor) = (&dh[r * h..(r + 1) * h], &dout[r * h..(r + 1) * h]);
            let dir = &mut direct[r * h..(r + 1) * h];
            match s.kind {
                CellKind::RnnTanh => {
                    for j in 0..h {
                        dxr[j] = (dhr[j] + dor[j]) * (1.0 - a[j] * a[j]);
                    }
                }
                CellKind::RnnRelu => {
                    for j in 0..h {
                        let d = dhr[j] + dor[j];
                        dxr[j] = if a[j] > 0.0 { d } else { 0.0 };
                    }
                }
                CellKind::Lstm => {
                    let dcr = &mut dc[r * h..(r + 1) * h];
                    let cp = &extra_t[r * h..(r + 1) * h];
                    let (i, f, g, o) = (&a[..h], &a[h..2 * h], &a[2 * h..3 * h], &a[3 * h..]);
                    let (di, rest) = dxr.split_at_mut(h);
                    let (df, rest) = rest.split_at_mut(h);
                    let (dg, d_o) = rest.split_at_mut(h);
                    // tanh(c_t), recomputed exactly as the forward did, into d_o for now.
                    for j in 0..h {
                        d_o[j] = f[j] * cp[j] + i[j] * g[j];
                    }
                    tanh_in_place(d_o);
                    for j in 0..h {
                        let tc = d_o[j];
                        let d = dhr[j] + dor[j];
                        let dct = dcr[j] + d * o[j] * (1.0 - tc * tc);
                        di[j] = dct * g[j] * i[j] * (1.0 - i[j]);
                        df[j] = dct * cp[j] * f[j] * (1.0 - f[j]);
                        dg[j] = dct * i[j] * (1.0 - g[j] * g[j]);
                        d_o[j] = d * tc * o[j] * (1.0 - o[j]);
                        dcr[j] = dct * f[j];
                    }
                }
                CellKind::Gru | CellKind::GruResetBefore => {
                    let dhr_p = &mut dhp_t[r * gh..(r + 1) * gh];
                    let hp = &hprev_t[r * h..(r + 1) * h];
                    let (rg, z, n) = (&a[..h], &a[h..2 * h], &a[2 * h..]);
                    for j in 0..h {
                        let d = dhr[j] + dor[j];
                        let dn = d * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
                        let dz = d * (hp[j] - n[j]) * z[j] * (1.0 - z[j]);
                        dxr[h + j] = dz;
                        dxr[2 * h + j] = dn;
                        dhr_p[h + j] = dz;
                        dir[j] = d * z[j];
                        if s.kind == CellKind::Gru {
                            let dr = dn * extra_t[r * h + j] * rg[j] * (1.0 - rg[j]);
                            dxr[j] = dr;
                            dhr_p[j] = dr;
                            dhr_p[2 * h + j] = dn * rg[j];
                        } else {
                            // dr needs (dn · W_hn), computed for all rows below.
                            dhr_p[2 * h + j] = dn;
                        }
                    }
                }
            }
        }
        if let (Some(hn), true) = (&weights.hn, any_active) {
            // drh = dHP_n · W_hn   // [rows, H]
            gemm_packed(rows, &dhp_t[2 * h..], gh, hn, &mut drh, h, false);
            for r in (0..rows).filter(|&r| active(t, r)) {
                let rg = &acts_t[r * gh..r * gh + h];
                let hp = &hprev_t[r * h..(r + 1) * h];
                for j in 0..h {
                    let d = drh[r * h + j];
                    let dr = d * hp[j] * rg[j] * (1.0 - rg[j]);
                    dxp_t[r * gh + j] = dr;
                    dhp_t[r * gh + j] = dr;
                    direct[r * h + j] += d * rg[j];
                }
            }
        }
        // ∂L/∂h_{t-1} = dHP_t[:, :k] · W_hh[:k] + direct   // [rows, H]
        let dhp_view: &[f32] = if separate_dhp { dhp_t } else { dxp_t };
        gemm_packed(rows, dhp_view, gh, &weights.hh, &mut dh_new, h, false);
        for r in 0..rows {
            let row = r * h..(r + 1) * h;
            if active(t, r) {
                if separate_dhp {
                    for j in row {
                        dh_new[j] += direct[j];
                    }
                }
            } else {
                // A padded step: the state passed through unchanged, so does its gradient.
                dh_new[row.clone()].copy_from_slice(&dh[row]);
            }
        }
        std::mem::swap(&mut dh, &mut dh_new);
    }
    ch.dh0.copy_from_slice(&dh);
    ch.dc0.copy_from_slice(&dc);
}
