//! The one training loop, for every [`Task`]: SGD/Adam, a learning-rate schedule, global-norm
//! clipping, truncated BPTT as a mode, validation every epoch, atomic checkpoints at every
//! epoch end (and every N batches if asked), exact resume from any checkpoint, a stop with a
//! clear error when the loss turns NaN or infinite, `metrics.jsonl`, TensorBoard files and the
//! training curve.
//!
//! Exactness. Everything random is a function of the run seed and the position in the run:
//! the order of epoch `e` (a shuffle seeded by the seed and `e`), each item's augmentation
//! (seeded by the seed, `e` and the item's index, see [`SampleSeeds`]), and the random layers
//! (dropout): the device's generator is re-seeded before every batch from the seed and the
//! batch's global step, because burn's generator state cannot be saved in a checkpoint. A run
//! stopped at any checkpoint and resumed therefore trains on the same batches with the same
//! masks and ends with the same weights, bit for bit, as a run that never stopped. (burn's
//! generator is one per process: two runs training at the same time in one process draw from
//! the same generator and are not reproducible; separate processes are.)
//!
//! Batches are built in a second thread while the current one trains (two ahead at most, so
//! memory stays bounded); a task can decode a batch's items in parallel inside `train_batch`.
//!
//! The library prints nothing: progress goes to an [`Observer`], which the CLI turns into a
//! progress bar.

use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor};

use super::checkpoint::{
    load_optimizer, load_weights, save_checkpoint, CheckpointMeta, PartialEpoch, SavePhase,
    TrainState, CHECKPOINT_FILE,
};
use super::clip::clip_grad_norm;
use super::config::{OptimizerKind, TrainConfig};
use super::groups::{freeze, LrPlan};
use super::history::{append_record, read_history, rewrite_history, EpochRecord, Metrics};
use super::task::{SampleSeeds, Stats, Task};
use super::tensorboard::Board;
use crate::error::{Error, Result};
use crate::plot::{line_panels, Panel, Series};
use crate::recurrent::tbptt::Detach;

/// Live progress of one training step.
#[derive(Debug, Clone)]
pub struct StepProgress<'a> {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Batch index within the epoch, from 1.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Loss of this batch (of its last window, in truncated BPTT).
    pub loss: f32,
    /// The task's metrics over the epoch so far.
    pub running: &'a [(&'static str, f64)],
    /// Running throughput of the epoch so far, in `unit` per second.
    pub throughput: f64,
    /// What the throughput counts (`images`, `tokens`).
    pub unit: &'a str,
}

/// Named points of the loop, reported to [`Observer::reached`]: where the crash test stops the
/// process (`kill -9`) to show that a resumed run loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopPoint {
    /// Batch `global_step` has been trained (weights updated, nothing saved).
    StepDone {
        /// Batches trained since the start of the run.
        global_step: usize,
    },
    /// Inside a checkpoint write: the optimizer file is written, the new weights are on disk
    /// under a temporary name, not yet renamed over the previous checkpoint.
    CheckpointStaged {
        /// The step the checkpoint being written belongs to.
        global_step: usize,
    },
    /// An epoch's record is in `metrics.jsonl` and TensorBoard, its checkpoint not yet written.
    EpochRecorded {
        /// The epoch's last step.
        global_step: usize,
    },
    /// A checkpoint has been written.
    CheckpointSaved {
        /// The step it belongs to.
        global_step: usize,
    },
}

/// Receives training events; every method has an empty default.
pub trait Observer {
    /// An epoch of `batches` batches begins (fewer are left when resuming mid-epoch).
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// A training step finished.
    fn step(&mut self, _progress: &StepProgress) {}
    /// Truncated BPTT: window `window` (from 1) of the `windows` of the current batch is
    /// trained, its loss `loss`. A language model's epoch can be one batch of hundreds of
    /// windows: this is its progress.
    fn window(&mut self, _window: usize, _windows: usize, _loss: f32) {}
    /// Validation (or test) of `count` items begins.
    fn validation_start(&mut self, _count: usize) {}
    /// An epoch finished (validated, recorded and checkpointed).
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// Asked after each checkpoint: `false` stops training there (the run can be resumed
    /// later exactly as if it had not stopped). Default: go on.
    fn keep_going(&mut self) -> bool {
        true
    }
    /// The loop passed `point`. For tests that crash the process on purpose; default: nothing.
    fn reached(&mut self, _point: LoopPoint) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What [`fit`] returns.
#[derive(Debug)]
pub struct Fitted<M> {
    /// The model after the last step trained.
    pub model: M,
    /// The records of every finished epoch, those before a resume included.
    pub history: Vec<EpochRecord>,
    /// Whether the observer stopped the run before its last epoch.
    pub stopped: bool,
}

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

/// Seed of the shuffle of epoch `epoch` (from 1): a function of the run seed and the epoch
/// only, so a resumed run sees the same order as an uninterrupted one.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

/// Seed of the device's generator for window `window` of batch `global_step` (dropout masks).
fn step_seed(seed: u64, global_step: usize, window: usize) -> u64 {
    SampleSeeds {
        run: seed ^ 0x6472_6f70_6f75_7400,
        epoch: global_step,
    }
    .of(window)
}

/// Initialises every parameter of `model` now. burn initialises parameters lazily, at their
/// first use, from the device's generator at that moment; the loop re-seeds that generator
/// before every batch, so without this the initial weights would come from the first batch's
/// seed instead of the run's.
pub fn materialize<M: Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// Where a run stands: what a checkpoint records.
struct Progress<S> {
    epoch_done: usize,
    global_step: usize,
    history: Vec<EpochRecord>,
    /// The epoch in progress: batches done, statistics, seconds.
    partial: Option<(usize, S, f64)>,
}

/// Trains `model` on `task` as `cfg` says, checkpointing into `dir` (created if needed) with
/// `run` (the task's configuration, as JSON) in every checkpoint. With `resume`, the model and
/// the optimizer continue from the checkpoint in `dir` (whose metadata `resume` is) exactly
/// where it was taken, mid-epoch included.
///
/// `device` must be an autodiff device; validation runs on its inner device.
#[allow(clippy::too_many_arguments)]
pub fn fit<T: Task>(
    task: &T,
    mut model: T::Model,
    cfg: &TrainConfig,
    run: &serde_json::Value,
    dir: &Path,
    resume: Option<&CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<Fitted<T::Model>> {
    cfg.validate()?;
    if task.train_len() == 0 {
        return Err(Error::invalid("training set", "holds no items"));
    }
    if cfg.tbptt.is_some() && !task.has_time_axis() {
        return Err(Error::invalid(
            "tbptt",
            "this task has no time axis to truncate backpropagation along",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    super::run::lock_run_dir(dir)?;
    materialize(&model);
    let mut optim = build_optimizer(cfg);
    let mut at = Progress::<T::Stats> {
        epoch_done: 0,
        global_step: 0,
        history: Vec::new(),
        partial: None,
    };
    if let Some(meta) = resume {
        let state = &meta.state;
        model = load_weights(model, &dir.join(CHECKPOINT_FILE))?;
        optim = load_optimizer(optim, &dir.join(&state.optimizer_file))?;
        at.epoch_done = state.epoch;
        at.global_step = state.global_step;
        at.history = if state.history.is_empty() && state.epoch > 0 {
            // A checkpoint of deepnet 0.1 kept no history: the file's lines up to it.
            let mut h = read_history(dir)?;
            h.retain(|r| r.epoch <= state.epoch);
            h
        } else {
            state.history.clone()
        };
        if let Some(p) = &state.partial {
            let stats = serde_json::from_value(p.stats.clone()).map_err(|e| {
                Error::checkpoint(
                    dir.join(CHECKPOINT_FILE),
                    format!("statistics of the epoch in progress unreadable: {e}"),
                )
            })?;
            at.partial = Some((p.batches_done, stats, p.seconds));
        }
        // Lines past the checkpoint (written just before a crash) belong to lost work.
        rewrite_history(dir, &at.history)?;
        remove_stale_temporaries(dir);
    }
    // Freezing is not recorded in the weights: it is applied again on every (re)start.
    model = freeze(model, &cfg.freeze)?;
    let lr_plan = LrPlan::new(&model, &cfg.lr_groups)?;
    if resume.is_none() {
        // A fresh start in a directory where an earlier start died before its first
        // checkpoint: its records and TensorBoard files describe nothing that exists.
        rewrite_history(dir, &[])?;
        let board_dir = dir.join(super::tensorboard::TENSORBOARD_DIR);
        if board_dir.exists() {
            std::fs::remove_dir_all(&board_dir).map_err(|e| Error::io(&board_dir, e))?;
        }
    }
    let mut board = Board::open(dir, resume.map(|_| at.global_step))?;
    let valid_batch_size = cfg
        .val_batch_size
        .unwrap_or_else(|| task.default_valid_batch_size(cfg.batch_size));
    let steps_per_epoch = task.batches_per_epoch(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut ckpt = Checkpointer { dir, run, observer };

    for epoch in at.epoch_done + 1..=cfg.epochs {
        let plan = task.epoch_batches(epoch_seed(cfg.seed, epoch), cfg.batch_size);
        let (skip, mut stats, seconds_before) = at.partial.take().unwrap_or_default();
        ckpt.observer
            .epoch_start(epoch, cfg.epochs, plan.len().saturating_sub(skip));
        let started = Instant::now();
        let seeds = SampleSeeds {
            run: cfg.seed,
            epoch,
        };
        let mut lr = cfg.lr;
        let mut stop = false;
        model = std::thread::scope(|scope| -> Result<T::Model> {
            let batches = prefetch(scope, &plan[skip.min(plan.len())..], |idx| {
                task.train_batch(idx, seeds, device)
            });
            for (b, batch) in (skip..).zip(batches) {
                let batch = batch?;
                lr = cfg
                    .schedule
                    .lr_at(cfg.lr, at.global_step, steps_per_epoch, total_steps);
                let windows = match cfg.tbptt {
                    Some(steps) => task.split_time(batch, steps)?,
                    None => vec![batch],
                };
                let mut carry = T::Carry::default();
                let mut loss_value = 0.0;
                let window_count = windows.len();
                for (w, window) in windows.into_iter().enumerate() {
                    device.seed(step_seed(cfg.seed, at.global_step, w));
                    let out = task.train_step(&model, window, carry)?;
                    loss_value = out.loss.clone().into_scalar::<f32>();
                    if !loss_value.is_finite() {
                        return Err(Error::Diverged {
                            epoch,
                            step: at.global_step,
                            loss: loss_value,
                        });
                    }
                    let mut grads = GradientsParams::from_grads(out.loss.backward(), &model);
                    if let Some(max_norm) = cfg.clip_norm {
                        clip_grad_norm(&model, &mut grads, max_norm as f32);
                    }
                    model = optim.step(lr_plan.at(lr), model, grads);
                    carry = out.carry.detach();
                    stats.merge(&out.stats);
                    if window_count > 1 {
                        ckpt.observer.window(w + 1, window_count, loss_value);
                    }
                }
                at.global_step += 1;
                let elapsed = seconds_before + started.elapsed().as_secs_f64();
                ckpt.observer.step(&StepProgress {
                    epoch,
                    batch: b + 1,
                    batches: plan.len(),
                    loss: loss_value,
                    running: &stats.metrics(),
                    throughput: stats.items() as f64 / elapsed.max(1e-9),
                    unit: task.unit(),
                });
                board.step(at.global_step, loss_value, lr)?;
                ckpt.observer.reached(LoopPoint::StepDone {
                    global_step: at.global_step,
                });
                let last_of_epoch = b + 1 == plan.len();
                if !last_of_epoch
                    && cfg
                        .checkpoint_every
                        .is_some_and(|k| at.global_step.is_multiple_of(k))
                {
                    board.flush()?;
                    let state = TrainState {
                        epoch: epoch - 1,
                        global_step: at.global_step,
                        optimizer_file: format!("optimizer-e{epoch:04}-s{:08}.bpk", at.global_step),
                        partial: Some(PartialEpoch {
                            batches_done: b + 1,
                            stats: serde_json::to_value(&stats)
                                .expect("a task's statistics serialize"),
                            seconds: elapsed,
                        }),
                        history: at.history.clone(),
                    };
                    ckpt.save(&model, &optim, &state)?;
                    if !ckpt.observer.keep_going() {
                        stop = true;
                        break;
                    }
                }
            }
            Ok(model)
        })?;
        if stop {
            return Ok(Fitted {
                model,
                history: at.history,
                stopped: true,
            });
        }
        let train_seconds = seconds_before + started.elapsed().as_secs_f64();
        ckpt.observer.validation_start(task.valid_len());
        let val = if task.valid_len() == 0 {
            Metrics::default()
        } else {
            Metrics::from(validate(task, &model, valid_batch_size, device)?.metrics())
        };
        let record = EpochRecord {
            epoch,
            global_step: at.global_step,
            lr,
            train_seconds,
            throughput: stats.items() as f64 / train_seconds.max(1e-9),
            throughput_unit: format!("{}/s", task.unit()),
            train: Metrics::from(stats.metrics()),
            val,
        };
        // The record goes out before the checkpoint: a crash between the two resumes from the
        // previous checkpoint, whose history drops this line again.
        append_record(dir, &record)?;
        board.epoch(&record)?;
        board.flush()?;
        at.history.push(record.clone());
        plot_history(&at.history, &dir.join("report").join("training_curve.png"))?;
        ckpt.observer.reached(LoopPoint::EpochRecorded {
            global_step: at.global_step,
        });
        let state = TrainState {
            epoch,
            global_step: at.global_step,
            optimizer_file: format!("optimizer-e{epoch:04}.bpk"),
            partial: None,
            history: at.history.clone(),
        };
        ckpt.save(&model, &optim, &state)?;
        ckpt.observer.epoch_end(&record);
        if epoch < cfg.epochs && !ckpt.observer.keep_going() {
            return Ok(Fitted {
                model,
                history: at.history,
                stopped: true,
            });
        }
    }
    Ok(Fitted {
        model,
        history: at.history,
        stopped: false,
    })
}

/// Removes the temporary files a killed process left in `dir` (a checkpoint write cut short
/// before its rename: see [`crate::io::StagedFile`]).
fn remove_stale_temporaries(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes checkpoints and tells the observer where it is.
struct Checkpointer<'a> {
    dir: &'a Path,
    run: &'a serde_json::Value,
    observer: &'a mut dyn Observer,
}

impl Checkpointer<'_> {
    fn save<M: Module>(
        &mut self,
        model: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
    ) -> Result<()> {
        let global_step = state.global_step;
        // burn's running statistics (batch norm) keep their last update aside until a sync,
        // and saving reads the synced value: without this a checkpoint taken mid-epoch would
        // hold statistics one batch old. `valid()` syncs them (its result is not needed).
        let _ = model.valid();
        let observer = &mut *self.observer;
        save_checkpoint(
            self.dir,
            model,
            optim,
            self.run,
            state,
            &mut |phase| match phase {
                SavePhase::WeightsStaged => {
                    observer.reached(LoopPoint::CheckpointStaged { global_step })
                }
            },
        )?;
        self.observer
            .reached(LoopPoint::CheckpointSaved { global_step });
        Ok(())
    }
}

/// The task's statistics of `model` (in evaluation mode) over the whole validation set, in
/// batches of `batch_size`, built ahead in a second thread.
pub fn validate<T: Task>(
    task: &T,
    model: &T::Model,
    batch_size: usize,
    device: &Device,
) -> Result<T::Stats> {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let plan: Vec<Vec<usize>> = (0..task.valid_len())
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|scope| {
        let mut stats = T::Stats::default();
        for batch in prefetch(scope, &plan, |idx| task.valid_batch(idx, &device)) {
            stats.merge(&task.valid_step(&model, batch?)?);
        }
        Ok(stats)
    })
}

/// Builds the batches of `plan` with `make` in a thread of `scope`, at most two ahead of the
/// consumer; an error ends the stream after being delivered. Dropping the receiver stops the
/// builder at its next batch.
pub fn prefetch<'scope, B, F>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    plan: &'scope [Vec<usize>],
    make: F,
) -> mpsc::IntoIter<Result<B>>
where
    B: Send + 'scope,
    F: Fn(&[usize]) -> Result<B> + Send + 'scope,
{
    let (tx, rx) = mpsc::sync_channel(2);
    scope.spawn(move || {
        for indices in plan {
            let batch = make(indices);
            let failed = batch.is_err();
            if tx.send(batch).is_err() || failed {
                return;
            }
        }
    });
    rx.into_iter()
}

/// Draws the history as one chart per metric (training and validation), into `path` (its
/// folder is created).
pub fn plot_history(history: &[EpochRecord], path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let names: Vec<String> = history
        .last()
        .map(|r| r.train.0.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let series = |label: &str, pick: &dyn Fn(&EpochRecord) -> Option<f64>| Series {
        label: label.into(),
        points: history
            .iter()
            .filter_map(|r| pick(r).map(|v| (r.epoch as f64, v)))
            .collect(),
    };
    let panels: Vec<Panel> = names
        .iter()
        .map(|name| Panel {
            title: name.clone(),
            x_label: "epoch".into(),
            y_label: name.clone(),
            series: vec![
                series("train", &|r| r.train.get(name)),
                series("validation", &|r| r.val.get(name)),
            ],
        })
        .collect();
    line_panels(&panels, path)
}
