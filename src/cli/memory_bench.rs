//! `deepnet memory-bench`: the long-term-dependency problems (adding, copy, row- and
//! pixel-sequential Fashion-MNIST) for tanh RNN, IRNN, LSTM and GRU, with and without gradient
//! clipping, each run a fixed number of optimizer steps on the one loop; a table against each
//! problem's trivial baseline and the learning curves.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::{load_dataset_pair, train_val_split, DatasetKind, DEFAULT_FASHION_MNIST_DIR};
use deepnet::models::SeqCell;
use deepnet::plot::{line_panels, Panel, Series};
use deepnet::recurrent::diagnostics::{plot_gradient_panels, NormCurve};
use deepnet::tasks::memory::{run_one, MemoryResult, Problem};
use deepnet::train::{OptimizerKind, Schedule, Silent, TrainConfig};
use deepnet::{Error, Result};

use super::device::DeviceArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProblemArg {
    Adding,
    Copy,
    RowFmnist,
    PixelFmnist,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CellArg {
    Tanh,
    Irnn,
    Lstm,
    Gru,
}

/// Options of `deepnet memory-bench`.
#[derive(Args, Debug)]
pub struct MemoryBenchArgs {
    /// Problems (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "adding")]
    problem: Vec<ProblemArg>,
    /// Sequence length T of the adding problem, delay T of the copy problem (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "200")]
    length: Vec<usize>,
    /// Recurrent layers (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tanh,irnn,lstm,gru"
    )]
    cells: Vec<CellArg>,
    /// Gradient clipping by global norm, comma-separated values; `none` for no clipping.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    clip: Vec<String>,
    /// Optimizer steps per run.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// Validations per run (the learning curve's points); steps are split evenly.
    #[arg(long, default_value_t = 10)]
    evals: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Adam's learning rate (constant).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Hidden features.
    #[arg(long, default_value_t = 128)]
    hidden_size: usize,
    /// Fashion-MNIST training images used (of the 55,000 left after 5,000 for validation).
    #[arg(long, default_value_t = 55_000)]
    train_images: usize,
    /// Fashion-MNIST directory.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory: one run directory per configuration, results.json, table.md,
    /// curves.png.
    #[arg(long, default_value = "runs/memory-bench")]
    out: PathBuf,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
    /// Train nothing: merge the results.json of these earlier `--out` directories
    /// (comma-separated) into one table, curves.png and gradient pictures under `--out`, so
    /// runs made with different settings per cell compare in one place.
    #[arg(long, value_delimiter = ',', value_name = "DIR,...")]
    combine: Vec<PathBuf>,
}

/// Runs `deepnet memory-bench`.
pub fn run(a: MemoryBenchArgs) -> Result<()> {
    if !a.combine.is_empty() {
        return combine(&a.combine, &a.out);
    }
    if a.steps == 0 || a.evals == 0 || a.evals > a.steps {
        return Err(Error::invalid(
            "steps",
            "--steps and --evals must be at least 1, evals at most steps",
        ));
    }
    if !a.steps.is_multiple_of(a.evals) {
        return Err(Error::invalid("evals", "must divide --steps"));
    }
    let clips: Vec<Option<f64>> = a
        .clip
        .iter()
        .map(|c| {
            if c == "none" {
                Ok(None)
            } else {
                c.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::invalid(
                            "clip",
                            format!("{c:?} is neither `none` nor a positive number"),
                        )
                    })
            }
        })
        .collect::<Result<_>>()?;
    if a.length.contains(&0) {
        return Err(Error::invalid("length", "must be at least 1"));
    }
    let device = a.device.device()?;
    let mut problems = Vec::new();
    for p in &a.problem {
        match p {
            ProblemArg::Adding => problems.extend(a.length.iter().map(|&length| Problem::Adding {
                length: length.max(2),
            })),
            ProblemArg::Copy => {
                problems.extend(a.length.iter().map(|&delay| Problem::Copy { delay }))
            }
            ProblemArg::RowFmnist => problems.push(Problem::RowFmnist),
            ProblemArg::PixelFmnist => problems.push(Problem::PixelFmnist),
        }
    }
    let images = if problems
        .iter()
        .any(|p| matches!(p, Problem::RowFmnist | Problem::PixelFmnist))
    {
        let (train, test) = load_dataset_pair(&a.data, DatasetKind::FashionMnist)?;
        // 5,000 for validation (a tenth of a smaller set).
        let (train, valid) = train_val_split(&train, (train.len() / 10).min(5000), a.seed);
        let keep: Vec<usize> = (0..a.train_images.min(train.len())).collect();
        Some((train.subset(&keep), valid, test))
    } else {
        None
    };
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let mut results: Vec<MemoryResult> = Vec::new();
    for &problem in &problems {
        for &clip in &clips {
            for cell in &a.cells {
                let cell = match cell {
                    CellArg::Tanh => SeqCell::Tanh,
                    CellArg::Irnn => SeqCell::Irnn,
                    CellArg::Lstm => SeqCell::Lstm,
                    CellArg::Gru => SeqCell::Gru,
                };
                let clip_name = clip_name(clip);
                let dir = a
                    .out
                    .join(format!("{}-{}-{clip_name}", problem.name(), cell.name()));
                let cfg = TrainConfig {
                    epochs: a.evals,
                    batch_size: a.batch_size,
                    lr: a.lr,
                    optimizer: OptimizerKind::Adam,
                    schedule: Schedule::Constant,
                    clip_norm: clip,
                    seed: a.seed,
                    ..TrainConfig::default()
                };
                let imgs = images.as_ref().map(|(t, v, s)| [t, v, s]);
                let imgs = if matches!(problem, Problem::RowFmnist | Problem::PixelFmnist) {
                    imgs
                } else {
                    None
                };
                eprintln!(
                    "{} {} {clip_name}: {} steps...",
                    problem.name(),
                    cell.name(),
                    a.steps
                );
                let r = match run_one(
                    problem,
                    cell,
                    a.hidden_size,
                    imgs,
                    &cfg,
                    a.steps / a.evals,
                    &dir,
                    &device,
                    &mut Silent,
                ) {
                    Ok(r) => r,
                    // A run that blows up is a result, not a failure of the benchmark.
                    Err(Error::Diverged { step, .. }) => MemoryResult {
                        problem,
                        cell,
                        clip_norm: clip,
                        steps: step,
                        test_loss: f64::NAN,
                        test_accuracy: None,
                        baseline: problem.trivial_baseline(),
                        seconds: 0.0,
                        curve: Vec::new(),
                        gradient_untrained: Vec::new(),
                        gradient_trained: Vec::new(),
                    },
                    Err(e) => return Err(e),
                };
                eprintln!(
                    "  test loss {:.4}{} (baseline {:.4}), {:.0}s",
                    r.test_loss,
                    r.test_accuracy
                        .map_or(String::new(), |x| format!(", accuracy {:.2}%", 100.0 * x)),
                    r.baseline,
                    r.seconds
                );
                results.push(r);
                write_outputs(&a.out, &results)?;
            }
        }
    }
    print!("{}", table(&results));
    println!(
        "results: {0}/results.json, {0}/table.md, {0}/curves.png, {0}/gradients-*.png",
        a.out.display()
    );
    Ok(())
}

/// `--combine`: the results of earlier invocations, reported together.
fn combine(dirs: &[PathBuf], out: &std::path::Path) -> Result<()> {
    let mut results: Vec<MemoryResult> = Vec::new();
    for dir in dirs {
        let path = dir.join("results.json");
        let bytes = deepnet::io::read_file(&path, deepnet::io::Limit::JSON)?;
        let rs: Vec<MemoryResult> = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(
                "--combine",
                format!("{} is not a memory-bench results file: {e}", path.display()),
            )
        })?;
        results.extend(rs);
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_outputs(out, &results)?;
    print!("{}", table(&results));
    println!(
        "results: {0}/results.json, {0}/table.md, {0}/curves.png, {0}/gradients-*.png",
        out.display()
    );
    Ok(())
}

fn table(results: &[MemoryResult]) -> String {
    let mut s = String::from("| problem | cell | clipping | steps | test loss | test accuracy | trivial baseline | seconds |\n|---|---|---|---|---|---|---|---|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.4} | {:.0} |\n",
            r.problem.name(),
            r.cell.name(),
            r.clip_norm.map_or("none".into(), |c| c.to_string()),
            r.steps,
            if r.test_loss.is_finite() {
                format!("{:.4}", r.test_loss)
            } else {
                "diverged".into()
            },
            r.test_accuracy
                .map_or("-".into(), |x| format!("{:.2}%", 100.0 * x)),
            r.baseline,
            r.seconds
        ));
    }
    s
}

fn write_outputs(out: &std::path::Path, results: &[MemoryResult]) -> Result<()> {
    let json = serde_json::to_string_pretty(results).expect("results serialize");
    deepnet::io::write_atomic(&out.join("results.json"), json.as_bytes())?;
    deepnet::io::write_atomic(&out.join("table.md"), table(results).as_bytes())?;
    let mut groups: Vec<(String, Vec<Series>)> = Vec::new();
    for r in results {
        let title = format!(
            "{}, {}",
            r.problem.name(),
            r.clip_norm
                .map_or("no clipping".into(), |c| format!("clip {c}"))
        );
        let steps_per_eval = r.steps / r.curve.len().max(1);
        let series = Series {
            label: r.cell.name().into(),
            points: r
                .curve
                .iter()
                .enumerate()
                .map(|(i, &v)| (((i + 1) * steps_per_eval) as f64, v))
                .collect(),
        };
        match groups.iter_mut().find(|(t, _)| *t == title) {
            Some((_, s)) => s.push(series),
            None => groups.push((title, vec![series])),
        }
    }
    let panels: Vec<Panel> = groups
        .into_iter()
        .map(|(title, series)| Panel {
            title,
            x_label: "optimizer step".into(),
            y_label: "validation loss".into(),
            series,
        })
        .collect();
    line_panels(&panels, &out.join("curves.png"))?;
    gradient_pictures(out, results)
}

/// One `gradients-<problem>.png` per problem: `‖∂L/∂h_t‖` of every run before training (left)
/// and after (right), on one scale; a run with clipping is labelled so.
fn gradient_pictures(out: &std::path::Path, results: &[MemoryResult]) -> Result<()> {
    let mut groups: Vec<(String, Vec<&MemoryResult>)> = Vec::new();
    for r in results {
        let key = r.problem.name();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rs)) => rs.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    for (problem, rs) in groups {
        let curves = |trained: bool| -> Vec<NormCurve> {
            rs.iter()
                .map(|r| {
                    let norms = if trained {
                        &r.gradient_trained
                    } else {
                        &r.gradient_untrained
                    };
                    let label = match r.clip_norm {
                        Some(c) => format!("{} (clip {c})", r.cell.name()),
                        None => r.cell.name().to_string(),
                    };
                    (label, norms.clone())
                })
                .collect()
        };
        let panels = [
            (format!("{problem}, untrained: ‖∂L/∂h_t‖"), curves(false)),
            (format!("{problem}, trained: ‖∂L/∂h_t‖"), curves(true)),
        ];
        plot_gradient_panels(&panels, &out.join(format!("gradients-{problem}.png")))?;
    }
    Ok(())
}

/// `noclip` or `clip<N>`, as in the run directories' names.
fn clip_name(clip: Option<f64>) -> String {
    clip.map_or("noclip".to_string(), |c| format!("clip{c}"))
}
