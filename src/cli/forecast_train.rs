//! `deepnet forecast-train`: video prediction on Moving Fashion-MNIST with a ConvLSTM
//! encoder-forecaster (Shi et al. 2015) or its FC-LSTM baseline, scored per predicted frame by
//! MSE and cross-entropy against "repeat the last frame".

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::DEFAULT_FASHION_MNIST_DIR;
use deepnet::models::{ForecasterConfig, ForecasterKind};
use deepnet::tasks::forecast::{
    resume_run, start_run, ForecastOutcome, ForecastRequest, FrameScores, MovingData,
};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::ProgressBars;

/// `--model` of video prediction.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelArg {
    /// ConvLSTM layers over 4x4 patches of the frames (16x16x16).
    ConvLstm,
    /// Fully connected LSTM layers over the flattened frames.
    FcLstm,
}

/// Options of `deepnet forecast-train`.
#[derive(Args, Debug)]
pub struct ForecastTrainArgs {
    /// The network.
    #[arg(long, value_enum, default_value = "conv-lstm")]
    model: ModelArg,
    /// Fashion-MNIST directory whose images move in the frames.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/forecast")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Training sequences.
    #[arg(long, default_value_t = 4000)]
    train_sequences: usize,
    /// Validation sequences.
    #[arg(long, default_value_t = 300)]
    valid_sequences: usize,
    /// Test sequences.
    #[arg(long, default_value_t = 1000)]
    test_sequences: usize,
    /// Seed of the sequences (the test set is fixed by it).
    #[arg(long, default_value_t = 1)]
    sequence_seed: u64,
    /// Channels of the ConvLSTM states, or features of the FC-LSTM states.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Stacked layers in the encoder and in the forecaster.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// ConvLSTM kernel side.
    #[arg(long, default_value_t = 3)]
    kernel_size: usize,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam's learning rate (cosine schedule to 0 over the run; 5e-3 beat 2e-3 on validation in a
    /// 64-sequence pilot, docs/forecast-moving/).
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f64,
    /// Save a checkpoint every N optimizer steps as well as every epoch.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Seed of the initialization and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet forecast-train`.
pub fn run(a: ForecastTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(dir, a.epochs, &device, &mut ProgressBars::new())?
    } else {
        let kind = match a.model {
            ModelArg::ConvLstm => ForecasterKind::ConvLstm,
            ModelArg::FcLstm => ForecasterKind::FcLstm,
        };
        let req = ForecastRequest {
            model: ForecasterConfig::new(kind)
                .with_hidden(a.hidden)
                .with_num_layers(a.layers)
                .with_kernel_size(a.kernel_size),
            data: MovingData {
                fashion_mnist: a.data.clone(),
                sequences: [a.train_sequences, a.valid_sequences, a.test_sequences],
                seed: a.sequence_seed,
            },
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(5),
                batch_size: a.batch_size,
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                clip_norm: Some(a.clip_norm),
                checkpoint_every: a.checkpoint_every,
                seed: a.seed,
                ..TrainConfig::default()
            },
            out: a.out.clone(),
        };
        eprintln!(
            "training a {} video predictor, run directory {}",
            kind.label(),
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new())?
    };
    print_outcome(&outcome);
    Ok(())
}

fn row(s: &FrameScores) {
    println!(
        "  {:<12} {:>10.5} {:>12.1}   {}",
        s.method,
        s.mean_mse(),
        s.mean_bce(),
        s.mse
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn print_outcome(o: &ForecastOutcome) {
    let r = &o.report;
    let [tr, va, te] = r.sequences;
    println!(
        "sequences: {tr} train, {va} validation, {te} test; {} with {} parameters",
        r.model_kind.label(),
        r.parameters
    );
    println!(
        "  {:<12} {:>10} {:>12}   MSE of predicted frames 1..10",
        "test", "MSE/pixel", "BCE/frame"
    );
    row(&r.last_frame);
    row(&r.model);
    println!(
        "  validation: MSE/pixel {:.5}, BCE/frame {:.1}",
        r.valid.mean_mse(),
        r.valid.mean_bce()
    );
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.1} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/forecast_test.json, {d}/report/strips/ (input, truth, prediction)");
}
