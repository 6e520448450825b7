//! `deepnet instance-train`: recurrent instance segmentation of generated scenes (Romera-Paredes
//! & Torr 2016): a CNN and a ConvLSTM that segments one item per step and says when it is done,
//! scored by symmetric best dice, |DiC| and counting accuracy, with and without overlap, against
//! connected components of an FCN's foreground.

use std::path::PathBuf;

use clap::Args;
use deepnet::data::DEFAULT_FASHION_MNIST_DIR;
use deepnet::models::InstanceSegmenterConfig;
use deepnet::tasks::instances::{
    resume_run, start_run, InstanceOutcome, InstanceRequest, InstanceScores, MethodScores,
};
use deepnet::tasks::segment::SegmentData;
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::ProgressBars;

/// Options of `deepnet instance-train`.
#[derive(Args, Debug)]
pub struct InstanceTrainArgs {
    /// An FCN run (`deepnet segment-train`) whose foreground the connected-components baseline
    /// splits; without it, no baseline.
    #[arg(long, value_name = "RUN")]
    baseline_fcn: Option<PathBuf>,
    /// Fashion-MNIST directory whose images the scenes are made of.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/instances")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Training scenes.
    #[arg(long, default_value_t = 10000)]
    train_scenes: usize,
    /// Validation scenes.
    #[arg(long, default_value_t = 500)]
    valid_scenes: usize,
    /// Test scenes.
    #[arg(long, default_value_t = 2000)]
    test_scenes: usize,
    /// Seed of the scenes (the same seed as an FCN run gives the same scenes).
    #[arg(long, default_value_t = 1)]
    scene_seed: u64,
    /// Channels of the encoder's output.
    #[arg(long, default_value_t = 64)]
    features: usize,
    /// Channels of the ConvLSTM state.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Number of epochs (in all, when resuming; default 10 for a new run).
    #[arg(long)]
    epochs: Option<usize>,
    /// Scenes per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Adam's learning rate (cosine schedule to 0 over the run).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
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

/// Runs `deepnet instance-train`.
pub fn run(a: InstanceTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(dir, a.epochs, &device, &mut ProgressBars::new())?
    } else {
        let req = InstanceRequest {
            model: InstanceSegmenterConfig::new()
                .with_features(a.features)
                .with_hidden(a.hidden),
            data: SegmentData {
                fashion_mnist: a.data.clone(),
                scenes: [a.train_scenes, a.valid_scenes, a.test_scenes],
                seed: a.scene_seed,
                items: [1, 4],
            },
            baseline_fcn: a.baseline_fcn.clone(),
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                batch_size: a.batch_size,
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                clip_norm: Some(1.0),
                checkpoint_every: a.checkpoint_every,
                seed: a.seed,
                ..TrainConfig::default()
            },
            out: a.out.clone(),
        };
        eprintln!(
            "training a recurrent instance segmenter, run directory {}",
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new())?
    };
    print_outcome(&outcome);
    Ok(())
}

fn cell(s: &InstanceScores) -> String {
    format!(
        "{:>6.1} {:>5.2} {:>6.1}%",
        100.0 * s.sbd,
        s.abs_dic,
        100.0 * s.count_accuracy
    )
}

fn row(m: &MethodScores) {
    println!(
        "  {:<48} {}   {}   {}",
        m.method,
        cell(&m.all),
        cell(&m.overlap),
        cell(&m.no_overlap)
    );
}

fn print_outcome(o: &InstanceOutcome) {
    let r = &o.report;
    let [tr, va, te] = r.scenes;
    println!(
        "scenes: {tr} train, {va} validation, {te} test ({} with overlap, {} without); {} parameters",
        r.model.overlap.scenes, r.model.no_overlap.scenes, r.parameters
    );
    println!(
        "  {:<48} {:>21}   {:>21}   {:>21}",
        "test: SBD |DiC| count-accuracy", "all scenes", "with overlap", "without overlap"
    );
    if let Some(b) = &r.baseline {
        row(b);
    }
    row(&r.model);
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/instances_test.json, {d}/report/instances-N.png (scene, truth, found, each step)");
}
