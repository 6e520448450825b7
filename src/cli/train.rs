//! `deepnet train MODEL`: a classifier from scratch on an MNIST-format directory or an image
//! folder. The options shared with `deepnet transfer` are [`TrainOptions`].

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use deepnet::data::{Augment, DatasetKind, FolderAugment, DEFAULT_FASHION_MNIST_DIR};
use deepnet::models::vision::ModelOptions;
use deepnet::tasks::classification::{
    resume_run, start_run, DataRequest, Normalize, RunOutcome, TrainRequest, TransferRequest,
};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::{Error, Result};

use super::device::DeviceArg;
use super::progress::ProgressBars;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimArg {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AugmentArg {
    None,
    Flip,
    FlipShift,
    CropFlip,
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NormalizeArg {
    Imagenet,
    Data,
}

/// The options of `deepnet train` and `deepnet transfer`.
#[derive(Args, Debug)]
pub struct TrainOptions {
    /// Data: an MNIST-format directory, or an image folder (one sub-folder per class; png,
    /// jpeg, bmp, webp, gif; any size, colour or grey).
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// MNIST-format data: which data set the directory holds (class names, normalization).
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetArg,
    /// Image folder: a validation folder with the same classes (instead of --val-size images
    /// carved from --data).
    #[arg(long, value_name = "DIR")]
    val_data: Option<PathBuf>,
    /// Image folder: a test folder with the same classes, evaluated once at the end (without
    /// it the final report is on the validation images).
    #[arg(long, value_name = "DIR")]
    test_data: Option<PathBuf>,
    /// Image folder: side of the square input [default: the model's, e.g. 224].
    #[arg(long)]
    image_size: Option<usize>,
    /// Image folder: normalise with ImageNet's mean/std or the training images' own.
    #[arg(long, value_enum, default_value = "imagenet")]
    normalize: NormalizeArg,
    /// Image folder: replace files that cannot be decoded by another image and report them,
    /// instead of stopping.
    #[arg(long)]
    skip_bad: bool,
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
    /// Seed for initialization, validation split, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Training images held out for validation [default: a tenth of the training images, at
    /// most 5000].
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
    /// Augmentation of the training images. MNIST-format data: flip, flip-shift (mirror half
    /// the time and shift by up to 2 pixels: RandomHorizontalFlip + RandomCrop(28, padding=2)).
    /// Image folders: flip, crop-flip (RandomResizedCrop + RandomHorizontalFlip).
    #[arg(long, value_enum, default_value = "none")]
    augment: AugmentArg,
    /// Keep parameters fixed: comma-separated globs over parameter paths (`conv1.*,layer1.*`;
    /// `!` excludes). Each must match a parameter.
    #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
    freeze: Vec<String>,
    /// MNIST-format data: train on the first N training images only (0 = all).
    #[arg(long, default_value_t = 0)]
    limit_train: usize,
    /// MNIST-format data: keep only these labels, relabelled 0, 1, ... (e.g. 5,6,7,8,9).
    #[arg(long, value_delimiter = ',', value_name = "LABEL,...")]
    classes: Vec<usize>,
    /// MNIST-format data: train on only K images per class (after the validation split).
    #[arg(long, value_name = "K")]
    per_class: Option<usize>,
    /// Seed of the --per-class draw [default: --seed].
    #[arg(long)]
    sample_seed: Option<u64>,
    /// Run directory to create [default: runs/MODEL].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Arguments of `deepnet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model name (see `deepnet summary --list`), e.g. lenet5, resnet20, resnet18.
    model: String,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    options: TrainOptions,
}

/// Whether `dir` is an MNIST-format directory (it has the training images file).
fn is_mnist_dir(dir: &Path) -> bool {
    ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

impl TrainOptions {
    /// The device asked for.
    pub fn device(&self) -> Result<burn::tensor::Device> {
        self.device.device()
    }

    /// The request these options make for `model`.
    pub fn request(&self, model: &str, model_options: ModelOptions) -> Result<TrainRequest> {
        let optimizer = match self.optimizer {
            OptimArg::Sgd => OptimizerKind::Sgd,
            OptimArg::Adam => OptimizerKind::Adam,
        };
        let lr = self.lr.unwrap_or(match optimizer {
            OptimizerKind::Sgd => 0.01,
            OptimizerKind::Adam => 2e-3,
        });
        let schedule = match self.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Step => Schedule::Step {
                step_size: self.step_size,
                gamma: self.gamma,
            },
            ScheduleArg::Cosine => Schedule::Cosine {
                min_lr: self.min_lr,
            },
        };
        let mnist = is_mnist_dir(&self.data) || !self.data.exists();
        let data = if mnist {
            for (set, flag) in [
                (self.val_data.is_some(), "--val-data"),
                (self.test_data.is_some(), "--test-data"),
                (self.image_size.is_some(), "--image-size"),
                (self.skip_bad, "--skip-bad"),
            ] {
                if set {
                    return Err(Error::invalid(
                        flag,
                        format!(
                            "is for image folders; {} is an MNIST-format directory",
                            self.data.display()
                        ),
                    ));
                }
            }
            DataRequest::Mnist {
                dir: self.data.clone(),
                dataset: match self.dataset {
                    DatasetArg::FashionMnist => DatasetKind::FashionMnist,
                    DatasetArg::Mnist => DatasetKind::Mnist,
                },
                val_size: self.val_size,
                augment: match self.augment {
                    AugmentArg::None => Augment::None,
                    AugmentArg::Flip => Augment::Flip,
                    AugmentArg::FlipShift => Augment::FlipShift,
                    AugmentArg::CropFlip => {
                        return Err(Error::invalid(
                            "--augment",
                            "crop-flip is for image folders; MNIST-format data takes flip or flip-shift",
                        ))
                    }
                },
                limit_train: self.limit_train,
                classes: self.classes.clone(),
                per_class: self.per_class,
                sample_seed: self.sample_seed.unwrap_or(self.seed),
            }
        } else {
            for (set, flag) in [
                (self.limit_train > 0, "--limit-train"),
                (!self.classes.is_empty(), "--classes"),
                (self.per_class.is_some(), "--per-class"),
            ] {
                if set {
                    return Err(Error::invalid(
                        flag,
                        format!(
                            "is for MNIST-format data; {} is an image folder",
                            self.data.display()
                        ),
                    ));
                }
            }
            DataRequest::Folder {
                dir: self.data.clone(),
                val_dir: self.val_data.clone(),
                test_dir: self.test_data.clone(),
                val_size: self.val_size,
                image_size: self.image_size,
                augment: match self.augment {
                    AugmentArg::None => FolderAugment::None,
                    AugmentArg::Flip => FolderAugment::Flip,
                    AugmentArg::CropFlip => FolderAugment::CropFlip,
                    AugmentArg::FlipShift => {
                        return Err(Error::invalid(
                            "--augment",
                            "flip-shift is for 28x28 MNIST-format data; image folders take flip or crop-flip",
                        ))
                    }
                },
                normalize: match self.normalize {
                    NormalizeArg::Imagenet => Normalize::ImageNet,
                    NormalizeArg::Data => Normalize::Data,
                },
                skip_bad: self.skip_bad,
            }
        };
        Ok(TrainRequest {
            out: self
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(model)),
            model: model.to_string(),
            data,
            train: TrainConfig {
                epochs: self.epochs.unwrap_or(10),
                batch_size: self.batch_size,
                lr,
                optimizer,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                schedule,
                clip_norm: self.clip_norm,
                seed: self.seed,
                val_batch_size: self.val_batch_size,
                checkpoint_every: self.checkpoint_every,
                tbptt: None,
                freeze: self.freeze.clone(),
                lr_groups: Vec::new(),
            },
            model_options,
        })
    }
}

/// Starts (or with a transfer request, transfers) a run with a progress display and prints
/// its outcome.
pub fn start(
    req: &TrainRequest,
    transfer: Option<&TransferRequest>,
    device: &burn::tensor::Device,
) -> Result<()> {
    eprintln!(
        "training {} on {}, run directory {}",
        req.model,
        match &req.data {
            DataRequest::Mnist { dir, .. } | DataRequest::Folder { dir, .. } => dir.display(),
        },
        req.out.display()
    );
    let outcome = start_run(req, transfer, device, &mut ProgressBars::new())?;
    print_outcome(&outcome);
    Ok(())
}

/// Runs `deepnet train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let device = a.options.device()?;
    if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        let outcome = resume_run(
            dir,
            a.options.epochs,
            Some(&a.model),
            &device,
            &mut ProgressBars::new(),
        )?;
        print_outcome(&outcome);
        return Ok(());
    }
    let req = a.options.request(&a.model, ModelOptions::default())?;
    start(&req, None, &device)
}

/// Prints the final report of a run.
pub fn print_outcome(o: &RunOutcome) {
    let t = &o.test;
    println!(
        "{}: {} images, accuracy {:.2}%, loss {:.4}",
        o.report_split,
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
    let (trainable, frozen) = o.params;
    println!("parameters: {trainable} trainable, {frozen} frozen");
    if !o.skipped.is_empty() {
        eprintln!(
            "warning: {} unreadable image file(s) skipped:",
            o.skipped.len()
        );
        for p in &o.skipped {
            eprintln!("  {}", p.display());
        }
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/config.json, {d}/metrics.jsonl, {d}/checkpoint.safetensors");
    println!("  {d}/report/training_curve.png, {d}/report/confusion_matrix.png, {d}/report/test_report.json");
    println!("  {d}/tensorboard/ (tensorboard --logdir {d})");
}
