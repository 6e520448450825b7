//! The long-term-dependency argument, measured: how the gradient of a loss on the last output
//! reaches earlier hidden states, and what the recurrent matrix's spectrum predicts.
//!
//! For an Elman RNN, `h_t = φ(W_hh h_{t-1} + W_ih x_t + b)`, so
//!
//! `∂L/∂h_t = (∏_{s=t+1..T} W_hhᵀ diag(φ'(a_s))) ∂L/∂h_T`:
//!
//! a product of `T − t` Jacobians. With `|φ'| ≤ 1`, its norm shrinks at least as fast as
//! `ρ(W_hh)^{T−t}` when the spectral radius `ρ < 1` (vanishing), and can grow like it when
//! `ρ > 1` (exploding, until tanh saturates). An orthogonal `W_hh` (all `|λ| = 1`) sits in
//! between. An LSTM's cell path `C_t = f_t ⊙ C_{t-1} + ...` multiplies the gradient by `f_t`
//! alone, no matrix: with the forget gate open (`f ≈ 1`) the gradient survives many steps.
//!
//! [`gradient_norms`] measures `‖∂L/∂h_t‖` (and for LSTM `‖∂L/∂C_t‖`) for `t = 1..T` with
//! `L = Σ h_T`, by adding a zero tensor that requires a gradient to every state (its gradient
//! is the state's), and [`spectrum`] computes the eigenvalues.

use burn::tensor::{Device, Tensor, TensorData};
use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::cell::{step, CellKind, CellTensors};
use crate::error::{Error, Result};

/// How the recurrent matrix is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// Each gate's `H×H` block is `scale · Q`, `Q` a random orthogonal matrix: every eigenvalue
    /// has modulus `scale`.
    Orthogonal,
    /// Entries `N(0, scale²/H)`: by the circular law the spectral radius is close to `scale`.
    Normal,
}

/// What to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradientProbe {
    /// The cell.
    pub cell: CellKind,
    /// Sequence length `T`.
    pub steps: usize,
    /// Hidden size `H` (also the input size).
    pub hidden: usize,
    /// Sequences averaged over.
    pub batch: usize,
    /// Initialisation of the recurrent matrix.
    pub init: Init,
    /// Its scale.
    pub scale: f64,
    /// Standard deviation of the inputs `x_t` (the input weights are `N(0, 1/H)`).
    pub input_std: f64,
    /// LSTM forget-gate bias (opens the gate: `σ(b)`), 0 for the other cells.
    pub forget_bias: f64,
    /// Seed of every random draw.
    pub seed: u64,
}

/// A measured curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradientCurve {
    /// Which state: "h" or "c" (LSTM cell path).
    pub state: String,
    /// `‖∂L/∂s_t‖` for `t = 1..T` (`1..T-1` for `c`: the gradient that the cell path carries
    /// into step `t + 1`), averaged over the batch.
    pub norms: Vec<f64>,
}

/// Eigenvalues of a square matrix, as `(re, im)`, and the spectral radius.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spectrum {
    /// Which matrix ("W_hh", or the gate block, e.g. "W_hf").
    pub name: String,
    /// Eigenvalues.
    pub eigenvalues: Vec<(f64, f64)>,
    /// `max |λ|`.
    pub spectral_radius: f64,
}

/// The result of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradientReport {
    /// What was measured.
    pub probe: GradientProbe,
    /// One curve per state ("h"; for LSTM also "c").
    pub curves: Vec<GradientCurve>,
    /// Spectrum of each gate block of the recurrent matrix.
    pub spectra: Vec<Spectrum>,
}

/// The eigenvalues of the square matrix `m` (row-major `n×n`).
pub fn spectrum(name: &str, m: &[f32], n: usize) -> Spectrum {
    let mat = DMatrix::from_row_slice(n, n, &m.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let eigenvalues: Vec<(f64, f64)> = mat
        .complex_eigenvalues()
        .iter()
        .map(|c| (c.re, c.im))
        .collect();
    let spectral_radius = eigenvalues
        .iter()
        .map(|(re, im)| re.hypot(*im))
        .fold(0.0, f64::max);
    Spectrum {
        name: name.to_string(),
        eigenvalues,
        spectral_radius,
    }
}

/// A random `n×n` orthogonal matrix (Q of the QR decomposition of a Gaussian matrix, signs
/// fixed so that the distribution is uniform), row-major.
fn orthogonal(n: usize, rng: &mut impl rand::Rng) -> Vec<f64> {
    let g = DMatrix::from_fn(n, n, |_, _| gaussian(rng));
    let qr = g.qr();
    let (q, r) = (qr.q(), qr.r());
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = q[(i, j)] * r[(j, j)].signum();
        }
    }
    out
}

fn gaussian(rng: &mut impl rand::Rng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gate names of the blocks of `W_hh`, in PyTorch's order.
fn gate_names(cell: CellKind) -> &'static [&'static str] {
    match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => &["W_hh"],
        CellKind::Lstm => &["W_hi", "W_hf", "W_hg", "W_ho"],
        CellKind::Gru | CellKind::GruResetBefore => &["W_hr", "W_hz", "W_hn"],
    }
}

/// The largest recurrent scale (spectral radius) and forget bias a probe takes.
pub const MAX_SCALE: f64 = 1000.0;

/// Measures `‖∂L/∂h_t‖` (and `‖∂L/∂C_t‖` for LSTM), `t = 1..T`, `L = Σ h_T`, on `device` (its
/// autodiff form, if it is not one already), and the spectrum of each gate block of `W_hh`.
pub fn gradient_norms(probe: &GradientProbe, device: &Device) -> Result<GradientReport> {
    let device = &if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    let (t_len, h, b) = (probe.steps, probe.hidden, probe.batch);
    if t_len == 0 || h == 0 || b == 0 {
        return Err(Error::invalid(
            "gradient probe",
            "steps, hidden size and batch must be at least 1",
        ));
    }
    // Above a radius of 1000 every state saturates or overflows f32 within a few steps, and
    // the eigenvalue solver spins on the infinities: nothing more is learned.
    if !(0.0..=MAX_SCALE).contains(&probe.scale) {
        return Err(Error::invalid(
            "scale",
            format!("{} (must be between 0 and {MAX_SCALE})", probe.scale),
        ));
    }
    if !probe.input_std.is_finite() || probe.input_std < 0.0 {
        return Err(Error::invalid(
            "input-std",
            format!("{} (must be a finite number ≥ 0)", probe.input_std),
        ));
    }
    if !probe.forget_bias.is_finite() || probe.forget_bias.abs() > MAX_SCALE {
        return Err(Error::invalid(
            "forget-bias",
            format!(
                "{} (must be between -{MAX_SCALE} and {MAX_SCALE})",
                probe.forget_bias
            ),
        ));
    }
    let g = probe.cell.gates();
    let mut rng = rand::rngs::StdRng::seed_from_u64(probe.seed);
    // W_hh, block by block.
    let mut w_hh = Vec::with_capacity(g * h * h);
    for _ in 0..g {
        let block = match probe.init {
            Init::Orthogonal => orthogonal(h, &mut rng),
            Init::Normal => (0..h * h)
                .map(|_| gaussian(&mut rng) / (h as f64).sqrt())
                .collect(),
        };
        w_hh.extend(block.iter().map(|v| (v * probe.scale) as f32));
    }
    let w_ih: Vec<f32> = (0..g * h * h)
        .map(|_| (gaussian(&mut rng) / (h as f64).sqrt()) as f32)
        .collect();
    let mut bias = vec![0f32; g * h];
    if probe.cell == CellKind::Lstm {
        bias[h..2 * h].fill(probe.forget_bias as f32);
    }
    let xs: Vec<f32> = (0..t_len * b * h)
        .map(|_| (gaussian(&mut rng) * probe.input_std) as f32)
        .collect();

    let w = CellTensors {
        weight_ih: Tensor::from_data(TensorData::new(w_ih, [g * h, h]), device),
        weight_hh: Tensor::from_data(TensorData::new(w_hh.clone(), [g * h, h]), device),
        bias_ih: Tensor::from_data(TensorData::new(bias, [g * h]), device),
        bias_hh: Tensor::zeros([g * h], device),
    };
    let x = Tensor::<3>::from_data(TensorData::new(xs, [t_len, b, h]), device);
    let curves = state_gradient_norms(probe.cell, &w, x, |states| {
        states.last().expect("at least one step").clone().sum()
    });
    let spectra = gate_names(probe.cell)
        .iter()
        .enumerate()
        .map(|(k, name)| spectrum(name, &w_hh[k * h * h..(k + 1) * h * h], h))
        .collect();
    Ok(GradientReport {
        probe: probe.clone(),
        curves,
        spectra,
    })
}

/// `‖∂L/∂h_t‖` (and `‖∂L/∂C_t‖` for an LSTM), `t = 1..T`, of the layer `w` of `kind` run over
/// `x [T, B, I]` from zero states, for the loss `loss(h_1..h_T)` (each state `[B, H]`): the
/// measurement behind [`gradient_norms`] (`L = Σ h_T` on random weights) and behind
/// `memory-bench`'s picture of trained and untrained models (`L` the task's loss on its read-out).
///
/// Each state gets a zero tensor that requires a gradient added to it (`h_t + 0`): that zero's
/// gradient is `∂L/∂h_t`, the total gradient reaching step `t` from every later step. Norms are
/// per sequence, averaged over the batch. `x` must be on an autodiff device.
pub fn state_gradient_norms(
    kind: CellKind,
    w: &CellTensors,
    x: Tensor<3>,
    loss: impl FnOnce(&[Tensor<2>]) -> Tensor<1>,
) -> Vec<GradientCurve> {
    let [t_len, b, _] = x.dims();
    let h = w.weight_hh.dims()[1];
    let device = x.device();
    let mut hs = Tensor::<2>::zeros([b, h], &device);
    let mut cs = Tensor::<2>::zeros([b, h], &device);
    let (mut states, mut probes_h, mut probes_c) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..t_len {
        let x_t = x.clone().narrow(0, t, 1).flatten::<2>(0, 1); // [B, I]
        let (h_new, c_new) = step(kind, w, x_t, hs, cs);
        let eh = Tensor::<2>::zeros([b, h], &device).require_grad();
        let ec = Tensor::<2>::zeros([b, h], &device).require_grad();
        hs = h_new + eh.clone();
        cs = c_new + ec.clone();
        states.push(hs.clone());
        probes_h.push(eh);
        probes_c.push(ec);
    }
    let grads = loss(&states).backward();
    let norms = |probes: &[Tensor<2>]| -> Vec<f64> {
        probes
            .iter()
            .map(|p| match p.grad(&grads) {
                Some(g) => {
                    let per_row = g.powf_scalar(2.0).sum_dim(1).sqrt(); // [B, 1]
                    per_row.mean().into_scalar::<f32>() as f64
                }
                None => 0.0,
            })
            .collect()
    };
    let mut curves = vec![GradientCurve {
        state: "h".into(),
        norms: norms(&probes_h),
    }];
    if kind.has_cell_state() {
        // C_T does not reach the loss through its probe (h_T was computed from C_T before the
        // probe was added), so the c curve stops at T - 1.
        let mut c = norms(&probes_c);
        c.pop();
        curves.push(GradientCurve {
            state: "c".into(),
            norms: c,
        });
    }
    curves
}

/// A norm-through-time curve to draw: its legend and `‖∂L/∂s_t‖` for `t = 1..`.
pub type NormCurve = (String, Vec<f64>);

/// Norms below this (underflow) are drawn at it.
const FLOOR: f64 = 1e-30;

/// Draws `‖∂L/∂s_t‖` against `t` on a log scale, one line per `(label, norms)`, into `path`.
/// Norms below 1e-30 (underflow) are drawn at 1e-30.
pub fn plot_gradient_norms(curves: &[NormCurve], path: &std::path::Path) -> Result<()> {
    plot_gradient_panels(
        &[(
            "Gradient through time: ‖∂L/∂h_t‖, L on the last output".to_string(),
            curves.to_vec(),
        )],
        path,
    )
}

/// Draws charts side by side, each `(title, curves)` as [`plot_gradient_norms`] draws one, on
/// one shared log scale so that they compare (the k-th curve of every chart has the same
/// colour).
pub fn plot_gradient_panels(
    panels: &[(String, Vec<NormCurve>)],
    path: &std::path::Path,
) -> Result<()> {
    use crate::plot::{plot_err, register_font};
    use plotters::prelude::*;
    register_font();
    let all = || panels.iter().flat_map(|(_, c)| c.iter());
    let steps = all().map(|(_, n)| n.len()).max().unwrap_or(1).max(2);
    let (lo, hi) = all()
        .flat_map(|(_, n)| n.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| {
            (lo.min(v.max(FLOOR)), hi.max(v))
        });
    let (lo, hi) = if lo > hi {
        (1e-3, 1.0)
    } else {
        (lo / 3.0, hi * 3.0)
    };
    let n = panels.len().max(1) as u32;
    let width = if n == 1 { 1000 } else { 720 * n };
    let root = BitMapBackend::new(path, (width, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    for ((title, curves), area) in panels.iter().zip(root.split_evenly((1, n as usize))) {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(1f64..steps as f64, (lo..hi).log_scale())
            .map_err(|e| plot_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("time step t")
            .y_desc("‖∂L/∂h_t‖ (log)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| plot_err(path, e))?;
        for (k, (label, norms)) in curves.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let points: Vec<(f64, f64)> = norms
                .iter()
                .enumerate()
                .map(|(t, &v)| {
                    (
                        (t + 1) as f64,
                        if v.is_finite() { v.max(FLOOR) } else { hi },
                    )
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| plot_err(path, e))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(cell: CellKind, init: Init, scale: f64) -> GradientProbe {
        GradientProbe {
            cell,
            steps: 30,
            hidden: 16,
            batch: 4,
            init,
            scale,
            input_std: 0.1,
            forget_bias: 0.0,
            seed: 1,
        }
    }

    #[test]
    fn spectrum_of_a_rotation_and_a_diagonal() {
        let s = spectrum("rot", &[0.0, -2.0, 2.0, 0.0], 2);
        assert!((s.spectral_radius - 2.0).abs() < 1e-9);
        let s = spectrum("diag", &[0.5, 0.0, 0.0, -0.25], 2);
        assert!((s.spectral_radius - 0.5).abs() < 1e-9);
    }

    #[test]
    fn orthogonal_init_has_unit_spectrum() {
        // A plain device is turned into its autodiff form.
        let device = Device::flex();
        let r = gradient_norms(&probe(CellKind::RnnTanh, Init::Orthogonal, 1.0), &device).unwrap();
        let s = &r.spectra[0];
        for (re, im) in &s.eigenvalues {
            assert!((re.hypot(*im) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn rnn_gradient_vanishes_below_radius_one() {
        let device = Device::flex().autodiff();
        let r = gradient_norms(&probe(CellKind::RnnTanh, Init::Orthogonal, 0.5), &device).unwrap();
        let n = &r.curves[0].norms;
        // The last state's gradient is the loss's: ‖1‖ = √H.
        assert!((n[29] - 4.0).abs() < 1e-4, "{}", n[29]);
        // 29 steps at |λ| = 0.5 and |tanh'| ≤ 1: at most 0.5^29 of it.
        assert!(n[0] <= 4.0 * 0.5f64.powi(29) * 1.01, "{}", n[0]);
        assert!(n.windows(2).all(|w| w[0] < w[1]), "monotone");
    }
}
