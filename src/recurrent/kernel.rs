//! The fused recurrent kernel: one layer, one direction, the whole sequence, forward and
//! backward, on f32 slices. The burn op in [`super::op`] wraps it.
//!
//! Why a kernel of our own: on burn-flex a step-by-step LSTM built from burn ops runs at 0.23x
//! PyTorch's speed (../shared/PERFORMANCE.md): every step allocates, activations call scalar
//! libm, and slicing a precomputed input projection makes the backward materialise full-size
//! gradients per step. Here:
//!
//! - the input projection of the whole sequence is one GEMM before the time loop
//!   (`XP = X · W_ihᵀ + b_ih`, `[T·B, G·H]`); only `h_{t-1} · W_hhᵀ` (all gates at once) runs
//!   per step;
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

use super::CellKind;
use crate::ops::gemm::{matmul, Mat};

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

/// tanh as a rational function (Eigen's `generic_fast_tanh_float`): max error a few ulp on
/// [-9, 9], exactly ±1 beyond. Branch-free, so loops over slices vectorise.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

/// σ(x) = ½·tanh(x/2) + ½.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

fn tanh_in_place(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh(*x));
}

fn sigmoid_in_place(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = sigmoid(*x));
}

/// Public for the tests and the reference comparison: the kernel's tanh.
#[cfg(test)]
pub(crate) fn fast_tanh(x: f32) -> f32 {
    tanh(x)
}

// ---------------------------------------------------------------------------------------------
// Forward

/// Runs the layer over the sequence. Returns the packed output `[T + 2, B, H]` and, with
/// `save`, the workspace for [`backward`] (empty otherwise).
pub(crate) fn forward(s: &Spec, inp: &Inputs<'_>, save: bool) -> (Vec<f32>, Vec<f32>) {
    let (t_len, b, h, gh) = (s.t, s.b, s.h, s.gh());
    let bh = b * h;
    let mut packed = vec![0f32; (t_len + 2) * bh];
    let mut ws = if save {
        vec![0f32; s.workspace_len()]
    } else {
        Vec::new()
    };

    // XP = X · W_ihᵀ + b_ih   // [T·B, G·H]
    let mut xp = vec![0f32; t_len * b * gh];
    for row in xp.chunks_mut(gh) {
        row.copy_from_slice(inp.b_ih);
    }
    matmul(
        t_len * b,
        gh,
        s.i,
        &mut xp,
        Mat::rows(inp.x, s.i),
        Mat::transposed(inp.w_ih, s.i),
        true,
        true,
    );

    let mut hs = inp.h0.to_vec(); // [B, H]
    let mut cs = inp.c0.to_vec(); // [B, H]
    let mut hp = vec![0f32; b * gh]; // h_{t-1} · W_hhᵀ + b_hh   // [B, G·H]
    let mut rh = vec![0f32; bh]; // reset-before GRU: r ⊙ h_{t-1}
    let mut hpn = vec![0f32; bh]; // reset-before GRU: (r ⊙ h_{t-1}) · W_hnᵀ + b_hn
    let mut gates = vec![0f32; gh]; // one row's activations

    for step in 0..t_len {
        let t = s.time(step);
        let hprev = hs.clone();
        let cprev = if save && s.kind == CellKind::Lstm {
            cs.clone()
        } else {
            Vec::new()
        };
        let rz = if s.kind == CellKind::GruResetBefore {
            2 * h
        } else {
            gh
        };
        // hp[:, :rz] = h_{t-1} · W_hh[:rz]ᵀ + b_hh[:rz]
        for row in hp.chunks_mut(gh) {
            row[..rz].copy_from_slice(&inp.b_hh[..rz]);
        }
        strided_matmul(b, rz, h, &mut hp, gh, &hprev, h, inp.w_hh, h);

        let xp_t = &xp[t * b * gh..(t + 1) * b * gh];
        let out_t = t * bh;
        let mut any_active = false;
        for r in 0..b {
            if !s.active(t, r) {
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
                        gates[2 * h + j] = xpr[2 * h + j] + gates[j] * hpr[2 * h + j];
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
                packed[out_t + r * h..out_t + (r + 1) * h].copy_from_slice(hr);
                if save {
                    ws_acts(&mut ws, s, t, r).copy_from_slice(&gates);
                }
            }
        }
        if s.kind == CellKind::GruResetBefore && any_active {
            // hpn = (r ⊙ h_{t-1}) · W_hnᵀ + b_hn
            for row in hpn.chunks_mut(h) {
                row.copy_from_slice(&inp.b_hh[2 * h..]);
            }
            strided_matmul(b, h, h, &mut hpn, h, &rh, h, &inp.w_hh[2 * h * h..], h);
            for r in (0..b).filter(|&r| s.active(t, r)) {
                let xpr = &xp_t[r * gh..(r + 1) * gh];
                gates[..2 * h].copy_from_slice(&hp[r * gh..r * gh + 2 * h]);
                for j in 0..h {
                    gates[2 * h + j] = xpr[2 * h + j] + hpn[r * h + j];
                }
                tanh_in_place(&mut gates[2 * h..]);
                let hr = &mut hs[r * h..(r + 1) * h];
                let (z, n) = (&gates[h..2 * h], &gates[2 * h..]);
                for j in 0..h {
                    hr[j] = (1.0 - z[j]) * n[j] + z[j] * hr[j];
                }
                packed[out_t + r * h..out_t + (r + 1) * h].copy_from_slice(hr);
                if save {
                    ws_acts(&mut ws, s, t, r).copy_from_slice(&gates);
                }
            }
        }
        if save {
            let (hprev_ws, extra_ws) = ws_states(&mut ws, s, t);
            hprev_ws.copy_from_slice(&hprev);
            match s.kind {
                CellKind::Lstm => extra_ws.copy_from_slice(&cprev),
                CellKind::Gru => {
                    for r in 0..b {
                        extra_ws[r * h..(r + 1) * h]
                            .copy_from_slice(&hp[r * gh + 2 * h..(r + 1) * gh]);
                    }
                }
                CellKind::GruResetBefore => extra_ws.copy_from_slice(&rh),
                CellKind::RnnTanh | CellKind::RnnRelu => {}
            }
        }
    }
    packed[t_len * bh..(t_len + 1) * bh].copy_from_slice(&hs);
    // Cells without a cell state pass c0 through unchanged.
    packed[(t_len + 1) * bh..].copy_from_slice(&cs);
    (packed, ws)
}

/// `dst[m×n]` (row stride `ldd`) `+= a[m×k]` (row-major, stride `lda`) `· w[n×k]ᵀ` (row-major,
/// stride `ldw`).
#[allow(clippy::too_many_arguments)]
fn strided_matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    a: &[f32],
    lda: usize,
    w: &[f32],
    ldw: usize,
) {
    if ldd == n {
        matmul(
            m,
            n,
            k,
            dst,
            Mat::rows(a, lda),
            Mat::transposed(w, ldw),
            true,
            true,
        );
    } else {
        // Rows of dst are strided: compute into a scratch matrix and add.
        let mut tmp = vec![0f32; m * n];
        matmul(
            m,
            n,
            k,
            &mut tmp,
            Mat::rows(a, lda),
            Mat::transposed(w, ldw),
            false,
            true,
        );
        for (row, t) in dst.chunks_mut(ldd).zip(tmp.chunks(n)) {
            row[..n].iter_mut().zip(t).for_each(|(d, v)| *d += v);
        }
    }
}

fn acts_offset(s: &Spec, t: usize, r: usize) -> usize {
    (t * s.b + r) * s.gh()
}

fn ws_acts<'a>(ws: &'a mut [f32], s: &Spec, t: usize, r: usize) -> &'a mut [f32] {
    let o = acts_offset(s, t, r);
    &mut ws[o..o + s.gh()]
}

/// The workspace's `h_{t-1}` and kind-specific `[B, H]` blocks of step `t`.
fn ws_states<'a>(ws: &'a mut [f32], s: &Spec, t: usize) -> (&'a mut [f32], &'a mut [f32]) {
    let (tb, bh) = (s.t * s.b, s.b * s.h);
    let (_, states) = ws.split_at_mut(tb * s.gh());
    let (hprev, extra) = states.split_at_mut(tb * s.h);
    (
        &mut hprev[t * bh..(t + 1) * bh],
        &mut extra[t * bh..(t + 1) * bh],
    )
}

// ---------------------------------------------------------------------------------------------
// Backward

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
pub(crate) fn backward(s: &Spec, inp: &Inputs<'_>, ws: &[f32], dpacked: &[f32]) -> Grads {
    let (t_len, b, h, gh, isz) = (s.t, s.b, s.h, s.gh(), s.i);
    let (bh, tb) = (b * h, t_len * b);
    let acts = &ws[..tb * gh]; // [T, B, G·H]
    let hprev_all = &ws[tb * gh..tb * gh + tb * h]; // [T, B, H]
    let extra_all = &ws[tb * gh + tb * h..]; // [T, B, H]
    let separate_dhp = matches!(s.kind, CellKind::Gru | CellKind::GruResetBefore);
    let mut dxp = vec![0f32; tb * gh]; // ∂L/∂(X·W_ihᵀ + b_ih)   // [T, B, G·H]
    let mut dhp = if separate_dhp {
        vec![0f32; tb * gh] // ∂L/∂(h·W_hhᵀ + b_hh)   // [T, B, G·H]
    } else {
        Vec::new() // the same as dxp
    };
    let mut dh = dpacked[t_len * bh..(t_len + 1) * bh].to_vec();
    let mut dc = dpacked[(t_len + 1) * bh..(t_len + 2) * bh].to_vec();
    let mut direct = vec![0f32; bh]; // the part of ∂L/∂h_{t-1} that bypasses W_hh
    let mut dh_new = vec![0f32; bh];
    let mut drh = vec![0f32; bh]; // reset-before GRU: ∂L/∂(r ⊙ h_{t-1})
                                  // Rows of W_hh that multiply h_{t-1} itself (reset-before GRU: only r and z).
    let k_hh = if s.kind == CellKind::GruResetBefore {
        2 * h
    } else {
        gh
    };

    for step in (0..t_len).rev() {
        let t = s.time(step);
        let dout = &dpacked[t * bh..(t + 1) * bh];
        let acts_t = &acts[t * b * gh..(t + 1) * b * gh];
        let hprev_t = &hprev_all[t * bh..(t + 1) * bh];
        let extra_t = &extra_all[t * bh..(t + 1) * bh];
        let dxp_t = &mut dxp[t * b * gh..(t + 1) * b * gh];
        let dhp_t: &mut [f32] = if separate_dhp {
            &mut dhp[t * b * gh..(t + 1) * b * gh]
        } else {
            &mut []
        };
        let mut any_active = false;
        for r in 0..b {
            if !s.active(t, r) {
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
                    for j in 0..h {
                        let tc = tanh(f[j] * cp[j] + i[j] * g[j]);
                        let d = dhr[j] + dor[j];
                        let dct = dcr[j] + d * o[j] * (1.0 - tc * tc);
                        dxr[j] = dct * g[j] * i[j] * (1.0 - i[j]);
                        dxr[h + j] = dct * cp[j] * f[j] * (1.0 - f[j]);
                        dxr[2 * h + j] = dct * i[j] * (1.0 - g[j] * g[j]);
                        dxr[3 * h + j] = d * tc * o[j] * (1.0 - o[j]);
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
        if s.kind == CellKind::GruResetBefore && any_active {
            // drh = dHP_n · W_hn   // [B, H]
            matmul(
                b,
                h,
                h,
                &mut drh,
                Mat {
                    data: &dhp_t[2 * h..],
                    rs: gh as isize,
                    cs: 1,
                },
                Mat::rows(&inp.w_hh[2 * h * h..], h),
                false,
                true,
            );
            for r in (0..b).filter(|&r| s.active(t, r)) {
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
        // ∂L/∂h_{t-1} = dHP_t[:, :k] · W_hh[:k] + direct   // [B, H]
        let dhp_view: &[f32] = if separate_dhp { dhp_t } else { dxp_t };
        matmul(
            b,
            h,
            k_hh,
            &mut dh_new,
            Mat::rows(dhp_view, gh),
            Mat::rows(inp.w_hh, h),
            false,
            true,
        );
        for r in 0..b {
            let row = r * h..(r + 1) * h;
            if s.active(t, r) {
                for j in row {
                    dh_new[j] += direct[j];
                }
            } else {
                // A padded step: the state passed through unchanged, so does its gradient.
                dh_new[row.clone()].copy_from_slice(&dh[row]);
            }
        }
        std::mem::swap(&mut dh, &mut dh_new);
    }

    let dhp_all: &[f32] = if separate_dhp { &dhp } else { &dxp };
    // ∂L/∂X = dXP · W_ih   // [T·B, I]
    let mut dx = vec![0f32; tb * isz];
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
            Mat {
                data: &dhp_all[2 * h..],
                rs: 1,
                cs: gh as isize,
            },
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
        h0: dh,
        c0: dc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_is_accurate() {
        let mut worst = 0f32;
        for k in -20_000..=20_000 {
            let x = k as f32 * 1e-3;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 5e-7, "max error {worst}");
        assert_eq!(fast_tanh(100.0), 1.0);
        assert_eq!(fast_tanh(-100.0), -1.0);
    }
}
