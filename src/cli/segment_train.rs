//! `deepnet segment-train`: semantic segmentation of generated scenes of Fashion-MNIST items
//! with a fully convolutional network (FCN-32s, then 16s and 8s grown from it, as Long et al.
//! 2015), scored by pixel accuracy, mean IoU and per-class IoU.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::DEFAULT_FASHION_MNIST_DIR;
use deepnet::models::vision::fcn::{FcnConfig, FcnVariant};
use deepnet::tasks::segment::{
    resume_run, start_run, SegmentData, SegmentOutcome, SegmentRequest, NUM_CLASSES,
};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::ProgressBars;

/// `--variant` of an FCN.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum VariantArg {
    /// Scores of stride 32 up-sampled in one step (the first stage).
    Fcn32s,
    /// Plus a skip from pool4 (grown from an FCN-32s run: --init-from).
    Fcn16s,
    /// Plus skips from pool4 and pool3 (grown from an FCN-16s run: --init-from).
    Fcn8s,
}

/// Options of `deepnet segment-train`.
#[derive(Args, Debug)]
pub struct SegmentTrainArgs {
    /// The skip variant.
    #[arg(long, value_enum, default_value = "fcn32s")]
    variant: VariantArg,
    /// The coarser run this stage grows from (FCN-16s from an FCN-32s run, 8s from a 16s run).
    #[arg(long, value_name = "RUN")]
    init_from: Option<PathBuf>,
    /// Fashion-MNIST directory whose images the scenes are made of.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/segment")]
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
    /// Seed of the scenes (the test scenes are fixed by it).
    #[arg(long, default_value_t = 1)]
    scene_seed: u64,
    /// Fewest items in a scene.
    #[arg(long, default_value_t = 1)]
    min_items: usize,
    /// Most items in a scene (at most 4).
    #[arg(long, default_value_t = 4)]
    max_items: usize,
    /// Number of epochs (in all, when resuming).
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

/// Runs `deepnet segment-train`.
pub fn run(a: SegmentTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(dir, a.epochs, &device, &mut ProgressBars::new())?
    } else {
        let variant = match a.variant {
            VariantArg::Fcn32s => FcnVariant::Fcn32s,
            VariantArg::Fcn16s => FcnVariant::Fcn16s,
            VariantArg::Fcn8s => FcnVariant::Fcn8s,
        };
        let req = SegmentRequest {
            model: FcnConfig::new(variant, NUM_CLASSES),
            data: SegmentData {
                fashion_mnist: a.data.clone(),
                scenes: [a.train_scenes, a.valid_scenes, a.test_scenes],
                seed: a.scene_seed,
                items: [a.min_items, a.max_items],
            },
            init_from: a.init_from.clone(),
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(6),
                batch_size: a.batch_size,
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                checkpoint_every: a.checkpoint_every,
                seed: a.seed,
                ..TrainConfig::default()
            },
            out: a.out.clone(),
        };
        eprintln!(
            "training {}, run directory {}",
            variant.label(),
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new())?
    };
    print_outcome(&outcome);
    Ok(())
}

fn print_outcome(o: &SegmentOutcome) {
    let r = &o.report;
    let [tr, va, te] = r.scenes;
    println!(
        "{} ({} parameters), scenes: {tr} train, {va} validation, {te} test",
        r.variant.label(),
        r.parameters
    );
    println!(
        "  test: pixel accuracy {:.2}%, mean IoU {:.2}%  (validation: {:.2}%, {:.2}%)",
        100.0 * r.test.pixel_accuracy,
        100.0 * r.test.mean_iou,
        100.0 * r.valid.pixel_accuracy,
        100.0 * r.valid.mean_iou
    );
    let per_class: Vec<String> = r
        .test
        .class_iou
        .iter()
        .map(|(name, iou)| match iou {
            Some(v) => format!("{name} {:.1}", 100.0 * v),
            None => format!("{name} -"),
        })
        .collect();
    println!("  IoU (%): {}", per_class.join(", "));
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/segment_test.json, {d}/report/test-N.png (scene, truth, prediction)");
}
