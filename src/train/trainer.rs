//! The one training loop: any [`ImageClassifier`], cross-entropy, SGD/Adam, a learning-rate
//! schedule, global-norm clipping, validation every epoch, an atomic checkpoint after every
//! epoch, resume, and a stop with a clear error when the loss turns NaN or infinite.
//!
//! The library prints nothing: progress goes to an [`Observer`], which the CLI turns into a
//! progress bar.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::checkpoint::{
    load_optimizer, load_weights, save_checkpoint, CheckpointMeta, TrainState,
};
use super::clip::clip_grad_norm;
use super::config::{OptimizerKind, RunConfig, TrainConfig};
use super::metrics::evaluate;
use crate::data::{shuffled_indices, ImageBatcher, ImageDataset};
use crate::error::{Error, Result};
use crate::vision::ImageClassifier;

/// File name of the per-epoch metrics (JSON lines) in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (on the fly, while the weights changed).
    pub train_accuracy: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_accuracy: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the training part of the epoch, seconds.
    pub train_seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
}

/// Live progress of one training step.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Batch index within the epoch, from 1.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Loss of this batch.
    pub loss: f32,
    /// Running training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Running throughput of the epoch so far.
    pub images_per_second: f64,
}

/// Receives training events; every method has an empty default.
pub trait Observer {
    /// An epoch of `batches` steps begins.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// A training step finished.
    fn step(&mut self, _progress: &StepProgress) {}
    /// Validation of `count` images begins.
    fn validation_start(&mut self, _count: usize) {}
    /// An epoch finished (validated and checkpointed).
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {}
    /// Asked after each checkpoint: `false` stops training there (the run can be resumed
    /// later exactly as if it had not stopped). Default: go on.
    fn keep_going(&mut self) -> bool {
        true
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// The optimizer `config` asks for.
pub fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((config.momentum > 0.0).then_some(MomentumConfig {
                momentum: config.momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init(),
    }
}

/// Mixed into the run seed for the augmentation RNG, so its draws are not the shuffle's.
const AUGMENT_SEED: u64 = 0x0061_7567_6d65_6e74;

/// Seed of the shuffle of epoch `epoch` (from 1): a function of the run seed and the epoch
/// only, so a resumed run sees the same order as an uninterrupted one.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

/// Reads `metrics.jsonl` of `dir` (missing file: empty).
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path = dir.join(METRICS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::bad_data(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn append_metrics(dir: &Path, m: &EpochMetrics) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let line = serde_json::to_string(m).expect("metrics serialize");
    writeln!(f, "{line}").map_err(|e| Error::io(&path, e))?;
    f.sync_data().map_err(|e| Error::io(&path, e))
}

/// The data a run trains on.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Training images (the validation split already removed).
    pub train: &'a ImageDataset,
    /// Validation images, evaluated after every epoch (may be empty).
    pub val: &'a ImageDataset,
}

/// Trains `model` for the epochs of `run.train` on `data.train`, validating on `data.val` after every
/// epoch and checkpointing into `dir`. With `resume`, the model and optimizer continue from
/// that checkpoint (whose weights `dir` holds) at the epoch after it.
///
/// `device` must be an autodiff device. Returns the trained model and the history of all
/// epochs (those before the resume included).
pub fn train<M: ImageClassifier>(
    mut model: M,
    run: &RunConfig,
    data: TrainData<'_>,
    dir: &Path,
    resume: Option<&CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<(M, Vec<EpochMetrics>)> {
    let TrainData { train, val } = data;
    let cfg = &run.train;
    cfg.validate()?;
    if train.is_empty() {
        return Err(Error::invalid("training set", "holds no images"));
    }
    let mut optim = build_optimizer(cfg);
    let mut start_epoch = 1;
    let mut global_step = 0;
    let mut history = Vec::new();
    if let Some(meta) = resume {
        let ckpt = dir.join(super::checkpoint::CHECKPOINT_FILE);
        model = load_weights(model, &ckpt)?;
        optim = load_optimizer(optim, &dir.join(&meta.state.optimizer_file))?;
        start_epoch = meta.state.epoch + 1;
        global_step = meta.state.global_step;
        // Lines past the checkpoint (written just before a crash) belong to lost work.
        history = read_metrics(dir)?;
        history.retain(|m| m.epoch <= meta.state.epoch);
        let text: String = history
            .iter()
            .map(|m| serde_json::to_string(m).expect("metrics serialize") + "\n")
            .collect();
        super::checkpoint::write_atomic(&dir.join(METRICS_FILE), text.as_bytes())?;
    }

    let batcher = ImageBatcher::new(device.clone(), run.data.normalization);
    let eval_batcher = ImageBatcher::new(device.clone().without_autodiff(), run.data.normalization);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;

    for epoch in start_epoch..=cfg.epochs {
        observer.epoch_start(epoch, cfg.epochs, steps_per_epoch);
        let order = shuffled_indices(train.len(), epoch_seed(cfg.seed, epoch));
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        // The augmentation draws have their own seed per epoch, apart from the shuffle's.
        let batches = batcher.iter_augmented(
            train,
            &order,
            cfg.batch_size,
            cfg.augment,
            epoch_seed(cfg.seed ^ AUGMENT_SEED, epoch),
        );
        for (b, batch) in batches.enumerate() {
            let n = batch.labels.dims()[0];
            lr = cfg
                .schedule
                .lr_at(cfg.lr, global_step, steps_per_epoch, total_steps);
            let (logits, aux) = model.forward_train(batch.images);
            let mut loss = loss_fn.forward(logits.clone(), batch.labels.clone());
            // Auxiliary classifiers (GoogLeNet): their weighted losses join the main one.
            for (aux_logits, weight) in aux {
                loss = loss
                    + loss_fn
                        .forward(aux_logits, batch.labels.clone())
                        .mul_scalar(weight);
            }
            let loss_value = loss.clone().into_scalar::<f32>();
            if !loss_value.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: global_step,
                    loss: loss_value,
                });
            }
            let hits = logits
                .argmax(1)
                .flatten::<1>(0, 1)
                .equal(batch.labels)
                .int()
                .sum()
                .into_scalar::<i64>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            if let Some(max_norm) = cfg.clip_norm {
                clip_grad_norm(&model, &mut grads, max_norm as f32);
            }
            model = optim.step(lr, model, grads);
            global_step += 1;
            loss_sum += loss_value as f64 * n as f64;
            correct += hits as usize;
            seen += n;
            observer.step(&StepProgress {
                epoch,
                batch: b + 1,
                batches: steps_per_epoch,
                loss: loss_value,
                accuracy: correct as f64 / seen as f64,
                images_per_second: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        observer.validation_start(val.len());
        let v = if val.is_empty() {
            None
        } else {
            Some(evaluate(&model, val, &eval_batcher, 1000, |_| {}))
        };
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_loss: v.as_ref().map_or(f64::NAN, |v| v.loss),
            val_accuracy: v.as_ref().map_or(f64::NAN, |v| v.accuracy),
            lr,
            train_seconds,
            images_per_second: seen as f64 / train_seconds.max(1e-9),
        };
        let state = TrainState {
            epoch,
            global_step,
            optimizer_file: format!("optimizer-e{epoch:04}.bpk"),
            val_accuracy: metrics.val_accuracy,
        };
        save_checkpoint(dir, &model, &optim, run, &state)?;
        append_metrics(dir, &metrics)?;
        observer.epoch_end(&metrics);
        history.push(metrics);
        if epoch < cfg.epochs && !observer.keep_going() {
            break;
        }
    }
    Ok((model, history))
}
