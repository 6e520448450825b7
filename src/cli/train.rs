//! `deepnet train MODEL`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::{Augment, DatasetKind, DEFAULT_FASHION_MNIST_DIR};
use deepnet::tasks::classification::{resume_run, start_run, RunOutcome, TrainRequest};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::ProgressBars;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimArg {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AugmentArg {
    None,
    Flip,
    FlipShift,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Constant,
    Step,
    Cosine,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DatasetArg {
    FashionMnist,
    Mnist,
}

/// Arguments of `deepnet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model name (see `deepnet summary --list`), e.g. lenet5 or lenet5-1998.
    model: String,
    /// MNIST-format data directory.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Which data set the directory holds (class names, normalization).
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetArg,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate [default: 2e-3 for adam, 0.01 for sgd].
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimArg,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Learning-rate schedule (cosine: anneal to --min-lr over the whole run).
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleArg,
    /// Step schedule: epochs between decays.
    #[arg(long, default_value_t = 5)]
    step_size: usize,
    /// Step schedule: decay factor.
    #[arg(long, default_value_t = 0.1)]
    gamma: f64,
    /// Cosine schedule: final learning rate.
    #[arg(long, default_value_t = 0.0)]
    min_lr: f64,
    /// Clip gradients to this global L2 norm (torch's clip_grad_norm_).
    #[arg(long)]
    clip_norm: Option<f64>,
    /// Seed for initialization, validation split and shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Training images held out for validation [default: a tenth of the training images,
    /// at most 5000].
    #[arg(long)]
    val_size: Option<usize>,
    /// Images per validation and test batch [default: as many as hold 2^20 input values, at
    /// most 1000, at least --batch-size].
    #[arg(long)]
    val_batch_size: Option<usize>,
    /// Also checkpoint every N batches (not only at epoch ends); --resume then continues from
    /// the middle of the epoch, exactly.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Augmentation of the training images (flip-shift: mirror left-right half the time and
    /// shift by up to 2 pixels, torchvision's RandomHorizontalFlip + RandomCrop(28, padding=2)).
    #[arg(long, value_enum, default_value = "none")]
    augment: AugmentArg,
    /// Train on the first N training images only (0 = all).
    #[arg(long, default_value_t = 0)]
    limit_train: usize,
    /// Run directory to create [default: runs/MODEL].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

/// Runs `deepnet train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let mut progress = ProgressBars::new();
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(dir, a.epochs, Some(&a.model), &device, &mut progress)?
    } else {
        let optimizer = match a.optimizer {
            OptimArg::Sgd => OptimizerKind::Sgd,
            OptimArg::Adam => OptimizerKind::Adam,
        };
        let lr = a.lr.unwrap_or(match optimizer {
            OptimizerKind::Sgd => 0.01,
            OptimizerKind::Adam => 2e-3,
        });
        let schedule = match a.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Step => Schedule::Step {
                step_size: a.step_size,
                gamma: a.gamma,
            },
            ScheduleArg::Cosine => Schedule::Cosine { min_lr: a.min_lr },
        };
        let req = TrainRequest {
            out: a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&a.model)),
            model: a.model.clone(),
            data_dir: a.data.clone(),
            dataset: match a.dataset {
                DatasetArg::FashionMnist => DatasetKind::FashionMnist,
                DatasetArg::Mnist => DatasetKind::Mnist,
            },
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                batch_size: a.batch_size,
                lr,
                optimizer,
                momentum: a.momentum,
                weight_decay: a.weight_decay,
                schedule,
                clip_norm: a.clip_norm,
                seed: a.seed,
                val_batch_size: a.val_batch_size,
                checkpoint_every: a.checkpoint_every,
                tbptt: None,
            },
            val_size: a.val_size,
            augment: match a.augment {
                AugmentArg::None => Augment::None,
                AugmentArg::Flip => Augment::Flip,
                AugmentArg::FlipShift => Augment::FlipShift,
            },
            limit_train: a.limit_train,
        };
        eprintln!(
            "training {} on {} ({}), run directory {}",
            req.model,
            req.data_dir.display(),
            req.dataset.name(),
            req.out.display()
        );
        start_run(&req, &device, &mut progress)?
    };
    print_outcome(&outcome);
    Ok(())
}

fn print_outcome(o: &RunOutcome) {
    let t = &o.test;
    println!(
        "test: {} images, accuracy {:.2}%, loss {:.4}",
        t.count,
        t.accuracy * 100.0,
        t.loss
    );
    for (name, acc) in t.class_names.iter().zip(&t.per_class_accuracy) {
        println!("  {name:<12} {:6.2}%", acc * 100.0);
    }
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/config.json, {d}/metrics.jsonl, {d}/checkpoint.safetensors");
    println!("  {d}/report/training_curve.png, {d}/report/confusion_matrix.png, {d}/report/test_report.json");
    println!("  {d}/tensorboard/ (tensorboard --logdir {d})");
}
