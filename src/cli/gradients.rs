//! `deepnet gradients`: the vanishing/exploding-gradient argument, measured.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::recurrent::diagnostics::{
    gradient_norms, plot_gradient_norms, GradientProbe, Init, MAX_SCALE,
};
use deepnet::recurrent::CellKind;
use deepnet::{Error, Result};

use super::device::DeviceArg;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CellArg {
    /// Elman RNN, tanh.
    Rnn,
    /// Elman RNN, ReLU.
    RnnRelu,
    /// LSTM.
    Lstm,
    /// GRU (PyTorch's reset-after).
    Gru,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitArg {
    /// Each gate block scale·Q, Q random orthogonal: every |λ| = scale.
    Orthogonal,
    /// Entries N(0, scale²/H): spectral radius ≈ scale.
    Normal,
}

/// Arguments of `deepnet gradients`.
#[derive(Args, Debug)]
pub struct GradientsArgs {
    /// Cells to measure (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CellArg::Rnn, CellArg::Lstm, CellArg::Gru])]
    cell: Vec<CellArg>,
    /// Sequence length T.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Initialisations of the recurrent matrix (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [InitArg::Orthogonal])]
    init: Vec<InitArg>,
    /// Scales of the recurrent matrix (comma-separated): its spectral radius.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0])]
    scale: Vec<f64>,
    /// LSTM forget-gate biases (comma-separated): the gate is σ(bias) at rest.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0])]
    forget_bias: Vec<f64>,
    /// Hidden size (also the input size).
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Sequences averaged over.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Standard deviation of the inputs.
    #[arg(long, default_value_t = 0.1)]
    input_std: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Explicit curves instead of the cross product of the lists above, repeatable:
    /// CELL:INIT:SCALE[:FORGET_BIAS], e.g. `rnn:normal:0.9` or `lstm:normal:1:3`.
    #[arg(long)]
    curve: Vec<String>,
    /// Output directory for gradients.csv, gradients.png and gradients.json.
    #[arg(long, default_value = "gradients")]
    out: PathBuf,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

fn cell_kind(c: CellArg) -> CellKind {
    match c {
        CellArg::Rnn => CellKind::RnnTanh,
        CellArg::RnnRelu => CellKind::RnnRelu,
        CellArg::Lstm => CellKind::Lstm,
        CellArg::Gru => CellKind::Gru,
    }
}

/// Runs the command.
pub fn run(a: GradientsArgs) -> Result<()> {
    if a.steps < 2 {
        return Err(Error::invalid("--steps", "needs at least 2 steps"));
    }
    // The measurement keeps every step's state and its gradient: bounded so that a typo cannot
    // ask for tens of gigabytes (10,000 steps x 4,096 hidden x 64 sequences is 10 GB).
    for (flag, value, max) in [
        ("--steps", a.steps, 10_000),
        ("--hidden", a.hidden, 4096),
        ("--batch", a.batch, 1024),
    ] {
        if value == 0 || value > max {
            return Err(Error::invalid(
                flag,
                format!("{value} is not between 1 and {max}"),
            ));
        }
    }
    if a.steps * a.hidden * a.batch > 1 << 28 {
        return Err(Error::invalid(
            "--steps",
            format!(
                "{} steps x {} hidden x {} sequences is more than 2^28 state values (1 GiB per copy); make one smaller",
                a.steps, a.hidden, a.batch
            ),
        ));
    }
    let probes = probes(&a)?;
    let device = a.device.device()?.autodiff();
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let mut reports = Vec::new();
    let mut curves: Vec<(String, Vec<f64>)> = Vec::new();
    println!(
        "{:<34} {:>9} {:>12} {:>12} {:>12}",
        "curve", "radius", "‖∂L/∂s_last‖", "‖∂L/∂s_1‖", "per step"
    );
    for (cell, probe) in probes {
        let kind = probe.cell;
        let report = gradient_norms(&probe, &device)?;
        let radius = report
            .spectra
            .iter()
            .map(|s| s.spectral_radius)
            .fold(0.0, f64::max);
        for c in &report.curves {
            let init = match probe.init {
                Init::Orthogonal => "orth",
                Init::Normal => "normal",
            };
            let mut label = format!(
                "{} {} {init} x{}",
                format!("{cell:?}").to_lowercase(),
                c.state,
                probe.scale
            );
            if kind == CellKind::Lstm {
                label.push_str(&format!(" fb{}", probe.forget_bias));
            }
            let n = c.norms.len();
            let (first, last) = (c.norms[0], c.norms[n - 1]);
            // Geometric rate per step: (‖∂L/∂s_1‖ / ‖∂L/∂s_last‖)^(1/(last - 1)).
            let rate = (first / last).powf(1.0 / (n - 1).max(1) as f64);
            println!("{label:<34} {radius:>9.3} {last:>12.3e} {first:>12.3e} {rate:>12.4}");
            curves.push((label, c.norms.clone()));
        }
        reports.push(report);
    }
    let csv_path = a.out.join("gradients.csv");
    let mut csv = String::from("t");
    for (label, _) in &curves {
        csv.push(',');
        csv.push_str(label);
    }
    csv.push('\n');
    for t in 0..a.steps {
        csv.push_str(&(t + 1).to_string());
        for (_, n) in &curves {
            match n.get(t) {
                Some(v) => csv.push_str(&format!(",{v:e}")),
                None => csv.push(','),
            }
        }
        csv.push('\n');
    }
    std::fs::write(&csv_path, csv).map_err(|e| Error::io(&csv_path, e))?;
    let json_path = a.out.join("gradients.json");
    let json = serde_json::to_string_pretty(&reports)
        .map_err(|e| Error::invalid("report", e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| Error::io(&json_path, e))?;
    let png = a.out.join("gradients.png");
    plot_gradient_norms(&curves, &png)?;
    eprintln!(
        "wrote {}, {} and {}",
        csv_path.display(),
        json_path.display(),
        png.display()
    );
    Ok(())
}

/// The probes to run: the `--curve` specs, or the cross product of the lists.
fn probes(a: &GradientsArgs) -> Result<Vec<(CellArg, GradientProbe)>> {
    let probe = |cell: CellArg, init: InitArg, scale: f64, forget_bias: f64| {
        let kind = cell_kind(cell);
        GradientProbe {
            cell: kind,
            steps: a.steps,
            hidden: a.hidden,
            batch: a.batch,
            init: match init {
                InitArg::Orthogonal => Init::Orthogonal,
                InitArg::Normal => Init::Normal,
            },
            scale,
            input_std: a.input_std,
            forget_bias: if kind == CellKind::Lstm {
                forget_bias
            } else {
                0.0
            },
            seed: a.seed,
        }
    };
    let mut out = Vec::new();
    if !a.curve.is_empty() {
        for spec in &a.curve {
            let bad = |why: &str| {
                Error::invalid(
                    "--curve",
                    format!("'{spec}': {why} (expected CELL:INIT:SCALE[:FORGET_BIAS], e.g. lstm:normal:1:3)"),
                )
            };
            let parts: Vec<&str> = spec.split(':').collect();
            if !(3..=4).contains(&parts.len()) {
                return Err(bad("wrong number of fields"));
            }
            let cell = CellArg::from_str(parts[0], true).map_err(|_| bad("unknown cell"))?;
            let init = InitArg::from_str(parts[1], true).map_err(|_| bad("unknown init"))?;
            let scale: f64 = parts[2].parse().map_err(|_| bad("scale is not a number"))?;
            let fb: f64 = match parts.get(3) {
                Some(v) => v.parse().map_err(|_| bad("forget bias is not a number"))?,
                None => 1.0,
            };
            // The library checks these too, but under the names of the list flags.
            if !(0.0..=MAX_SCALE).contains(&scale) {
                return Err(bad(&format!("scale must be between 0 and {MAX_SCALE}")));
            }
            if !(fb.is_finite() && fb.abs() <= MAX_SCALE) {
                return Err(bad(&format!(
                    "forget bias must be between -{MAX_SCALE} and {MAX_SCALE}"
                )));
            }
            out.push((cell, probe(cell, init, scale, fb)));
        }
        return Ok(out);
    }
    for &cell in &a.cell {
        let biases: &[f64] = if cell_kind(cell) == CellKind::Lstm {
            &a.forget_bias
        } else {
            &[0.0]
        };
        for &init in &a.init {
            for &scale in &a.scale {
                for &fb in biases {
                    out.push((cell, probe(cell, init, scale, fb)));
                }
            }
        }
    }
    Ok(out)
}
