//! Long-term dependencies, measured: the problems on which a plain RNN fails and gated or
//! well-initialised ones learn, each trained by the one loop with a fixed budget of optimizer
//! steps. `deepnet memory-bench` is the function of this file.
//!
//! - **Adding** (Hochreiter & Schmidhuber 1997, as in Le et al. 2015): `T` steps of two inputs,
//!   a value uniform in [0, 1] and a marker; two steps are marked, one in each half; the target
//!   is the sum of the two marked values, read at the last step. Predicting the mean (1) gives
//!   MSE 2/12 ≈ 0.167: a model below that has learned to remember.
//! - **Copy** (Arjovsky, Shah & Bengio 2016): ten symbols from {1..8}, `T − 1` blanks, a
//!   delimiter (9), ten blanks; the target is blanks until the last ten steps, which must repeat
//!   the ten symbols. A model that remembers nothing does best with cross-entropy
//!   `10 · ln 8 / (T + 20)` per step.
//! - **Row-sequential Fashion-MNIST**: 28 steps of 28 pixels, the class at the last step;
//!   **pixel-sequential**: 784 steps of one pixel.

use std::path::Path;

use burn::nn::loss::{CrossEntropyLossConfig, MseLoss};
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::data::batch::rng;
use crate::data::{shuffled_indices, ImageDataset, SampleSeeds};
use crate::error::{Error, Result};
use crate::models::{SeqCell, SequenceNet, SequenceNetConfig};
use crate::recurrent::diagnostics::state_gradient_norms;
use crate::recurrent::CellTensors;
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// A long-term-dependency problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
pub enum Problem {
    /// The adding problem over `length` steps.
    Adding {
        /// Sequence length `T`.
        length: usize,
    },
    /// The copy problem with `delay` blanks between the symbols and the delimiter.
    Copy {
        /// Delay `T`.
        delay: usize,
    },
    /// Fashion-MNIST, one row of 28 pixels per step.
    RowFmnist,
    /// Fashion-MNIST, one pixel per step (784 steps).
    PixelFmnist,
}

/// Symbols to copy.
const COPY_SYMBOLS: usize = 10;
/// Classes of a copy step: blank, eight symbols, delimiter.
const COPY_CLASSES: usize = 10;
/// Seeds of the fixed validation and test sequences of the synthetic problems (XORed with the
/// run's seed), apart from every training stream.
const VALID_SEED: u64 = 0x7661_6c69_6400_0000;
const TEST_SEED: u64 = 0x7465_7374_0000_0000;
/// Fashion-MNIST's training mean and standard deviation.
const FMNIST_MEAN: f32 = 0.2860;
const FMNIST_STD: f32 = 0.3530;

impl Problem {
    /// `(input features, outputs)`.
    pub fn sizes(self) -> (usize, usize) {
        match self {
            Problem::Adding { .. } => (2, 1),
            Problem::Copy { .. } => (COPY_CLASSES, COPY_CLASSES),
            Problem::RowFmnist => (28, 10),
            Problem::PixelFmnist => (1, 10),
        }
    }

    /// A short name: `adding-T200`, `copy-T100`, `row-fmnist`, `pixel-fmnist`.
    pub fn name(self) -> String {
        match self {
            Problem::Adding { length } => format!("adding-T{length}"),
            Problem::Copy { delay } => format!("copy-T{delay}"),
            Problem::RowFmnist => "row-fmnist".into(),
            Problem::PixelFmnist => "pixel-fmnist".into(),
        }
    }

    /// What a model that has learned nothing long-term scores: the adding problem's 0.167 MSE,
    /// the copy problem's memoryless cross-entropy, chance accuracy on Fashion-MNIST.
    pub fn trivial_baseline(self) -> f64 {
        match self {
            Problem::Adding { .. } => 2.0 / 12.0,
            Problem::Copy { delay } => {
                COPY_SYMBOLS as f64 * 8f64.ln() / (delay + 2 * COPY_SYMBOLS) as f64
            }
            Problem::RowFmnist | Problem::PixelFmnist => 0.1,
        }
    }

    fn is_images(self) -> bool {
        matches!(self, Problem::RowFmnist | Problem::PixelFmnist)
    }
}

/// One sequence: inputs `[T · I]` and its target.
enum Target {
    Value(f32),
    Class(usize),
    Steps(Vec<usize>),
}

/// Summed statistics: loss, and hits where the problem has classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemStats {
    /// Sum of per-sequence losses (mean over steps for copy).
    pub loss_sum: f64,
    /// Sequences seen.
    pub count: usize,
    /// Sequences classified right (Fashion-MNIST) or copy steps right.
    pub correct: usize,
    /// What `correct` counts out of (0: no accuracy for this problem).
    pub judged: usize,
}

impl Stats for MemStats {
    fn merge(&mut self, o: &Self) {
        self.loss_sum += o.loss_sum;
        self.count += o.count;
        self.correct += o.correct;
        self.judged += o.judged;
    }
    fn items(&self) -> usize {
        self.count
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![("loss", self.loss_sum / self.count.max(1) as f64)];
        if self.judged > 0 {
            m.push(("accuracy", self.correct as f64 / self.judged as f64));
        }
        m
    }
}

/// A batch: inputs `[B, T, I]` and targets.
pub struct MemBatch {
    x: Tensor<3>,
    target: BatchTarget,
}

enum BatchTarget {
    Values(Tensor<2>),
    Classes(Tensor<1, Int>),
    Steps(Tensor<2, Int>),
}

/// The data of a run: images for Fashion-MNIST, seeds for the synthetic problems.
pub struct MemoryTask<'a> {
    problem: Problem,
    /// Training, validation and test images (Fashion-MNIST problems).
    images: Option<[&'a ImageDataset; 3]>,
    epoch_items: usize,
    valid_items: usize,
    seed: u64,
}

impl<'a> MemoryTask<'a> {
    /// `problem` with `epoch_items` training sequences per epoch and `valid_items` validation
    /// ones; `images` (train, validation, test) for the Fashion-MNIST problems.
    pub fn new(
        problem: Problem,
        images: Option<[&'a ImageDataset; 3]>,
        epoch_items: usize,
        valid_items: usize,
        seed: u64,
    ) -> Result<Self> {
        if problem.is_images() != images.is_some() {
            return Err(Error::invalid(
                "problem",
                "Fashion-MNIST problems need the images, the synthetic ones none",
            ));
        }
        let valid_items = match images {
            Some([_, v, _]) => v.len(),
            None => valid_items,
        };
        Ok(MemoryTask {
            problem,
            images,
            epoch_items,
            valid_items,
            seed,
        })
    }

    /// Synthetic sequence number `index` of the stream seeded by `seed`.
    fn synthetic(&self, seed: u64) -> (Vec<f32>, Target) {
        let mut r = rng(seed);
        match self.problem {
            Problem::Adding { length } => {
                let t = length.max(2);
                let mut x = vec![0f32; t * 2];
                for s in 0..t {
                    x[2 * s] = r.random::<f32>();
                }
                let a = r.random_range(0..t / 2);
                let b = r.random_range(t / 2..t);
                x[2 * a + 1] = 1.0;
                x[2 * b + 1] = 1.0;
                let y = x[2 * a] + x[2 * b];
                (x, Target::Value(y))
            }
            Problem::Copy { delay } => {
                let t = delay + 2 * COPY_SYMBOLS;
                let mut x = vec![0f32; t * COPY_CLASSES];
                let mut y = vec![0usize; t];
                for s in 0..COPY_SYMBOLS {
                    let sym = r.random_range(1..=8usize);
                    x[s * COPY_CLASSES + sym] = 1.0;
                    y[delay + COPY_SYMBOLS + s] = sym;
                }
                for s in COPY_SYMBOLS..t {
                    let class = if s == delay + COPY_SYMBOLS - 1 { 9 } else { 0 };
                    x[s * COPY_CLASSES + class] = 1.0;
                }
                (x, Target::Steps(y))
            }
            Problem::RowFmnist | Problem::PixelFmnist => unreachable!("images are not synthetic"),
        }
    }

    fn image(&self, set: &ImageDataset, i: usize) -> (Vec<f32>, Target) {
        let px = set.rows * set.cols;
        let x = set.images[i * px..(i + 1) * px]
            .iter()
            .map(|&p| (p as f32 / 255.0 - FMNIST_MEAN) / FMNIST_STD)
            .collect();
        (x, Target::Class(set.labels[i] as usize))
    }

    /// Held-out item `i`: image `i` of `set`, or the `i`-th fixed synthetic sequence of the
    /// stream salted by `salt` (validation and test draw from different streams).
    fn held_out(&self, set: Option<&ImageDataset>, salt: u64, i: usize) -> (Vec<f32>, Target) {
        match set {
            Some(set) => self.image(set, i),
            None => self.synthetic(
                SampleSeeds {
                    run: self.seed ^ salt,
                    epoch: 0,
                }
                .of(i),
            ),
        }
    }

    fn batch(&self, items: Vec<(Vec<f32>, Target)>, device: &Device) -> MemBatch {
        let (i, _) = self.problem.sizes();
        let b = items.len();
        let t = items[0].0.len() / i;
        let x: Vec<f32> = items.iter().flat_map(|(x, _)| x.iter().copied()).collect();
        let x = Tensor::from_data(TensorData::new(x, [b, t, i]), device); // [B, T, I]
        let target = match &items[0].1 {
            Target::Value(_) => BatchTarget::Values(Tensor::from_data(
                TensorData::new(
                    items
                        .iter()
                        .map(|(_, y)| match y {
                            Target::Value(v) => *v,
                            _ => 0.0,
                        })
                        .collect::<Vec<f32>>(),
                    [b, 1],
                ),
                device,
            )),
            Target::Class(_) => BatchTarget::Classes(Tensor::from_data(
                TensorData::new(
                    items
                        .iter()
                        .map(|(_, y)| match y {
                            Target::Class(c) => *c as i64,
                            _ => 0,
                        })
                        .collect::<Vec<i64>>(),
                    [b],
                ),
                device,
            )),
            Target::Steps(_) => BatchTarget::Steps(Tensor::from_data(
                TensorData::new(
                    items
                        .iter()
                        .flat_map(|(_, y)| match y {
                            Target::Steps(s) => s.iter().map(|&c| c as i64).collect::<Vec<_>>(),
                            _ => Vec::new(),
                        })
                        .collect::<Vec<i64>>(),
                    [b, t],
                ),
                device,
            )),
        };
        MemBatch { x, target }
    }

    fn step(&self, model: &SequenceNet, batch: MemBatch) -> Result<(Tensor<1>, MemStats)> {
        let b = batch.x.dims()[0];
        match batch.target {
            BatchTarget::Values(y) => {
                let pred = model.forward_last(batch.x)?; // [B, 1]
                let loss = MseLoss::new().forward(pred, y, burn::nn::loss::Reduction::Mean);
                let v = loss.clone().into_scalar::<f32>() as f64;
                Ok((
                    loss,
                    MemStats {
                        loss_sum: v * b as f64,
                        count: b,
                        ..MemStats::default()
                    },
                ))
            }
            BatchTarget::Classes(y) => {
                let logits = model.forward_last(batch.x)?; // [B, 10]
                let loss = CrossEntropyLossConfig::new()
                    .init(&logits.device())
                    .forward(logits.clone(), y.clone());
                let hits = logits.argmax(1).flatten::<1>(0, 1).equal(y).int().sum();
                let v = loss.clone().into_scalar::<f32>() as f64;
                Ok((
                    loss,
                    MemStats {
                        loss_sum: v * b as f64,
                        count: b,
                        correct: hits.into_scalar::<i64>() as usize,
                        judged: b,
                    },
                ))
            }
            BatchTarget::Steps(y) => {
                let logits = model.forward_all(batch.x)?; // [B, T, C]
                let [_, t, c] = logits.dims();
                let flat = logits.reshape([b * t, c]); // [B·T, C]
                let y = y.reshape([b * t]); // [B·T]
                let loss = CrossEntropyLossConfig::new()
                    .init(&flat.device())
                    .forward(flat.clone(), y.clone());
                // Accuracy on the ten steps that must repeat the symbols.
                let tail_pred =
                    flat.argmax(1)
                        .reshape([b, t])
                        .narrow(1, t - COPY_SYMBOLS, COPY_SYMBOLS);
                let tail_y = y.reshape([b, t]).narrow(1, t - COPY_SYMBOLS, COPY_SYMBOLS);
                let hits = tail_pred.equal(tail_y).int().sum().into_scalar::<i64>() as usize;
                let v = loss.clone().into_scalar::<f32>() as f64;
                Ok((
                    loss,
                    MemStats {
                        loss_sum: v * b as f64,
                        count: b,
                        correct: hits,
                        judged: b * COPY_SYMBOLS,
                    },
                ))
            }
        }
    }

    /// `‖∂L/∂h_t‖`, `t = 1..T`, of `model` (on an autodiff device) on the first 32 validation
    /// sequences, `L` the task's loss on the steps that need memory: the last step (adding,
    /// Fashion-MNIST) or the ten recall steps (copy). How much of the loss's gradient reaches
    /// step `t` — the measurement of `deepnet gradients` on a trained or untrained network.
    pub fn gradient_through_time(&self, model: &SequenceNet, device: &Device) -> Vec<f64> {
        let items = (0..32)
            .map(|i| self.held_out(self.images.map(|[_, v, _]| v), VALID_SEED, i))
            .collect();
        let batch = self.batch(items, device);
        let (kind, w) = model.recurrence();
        let w = CellTensors {
            weight_ih: w.weight_ih.detach(),
            weight_hh: w.weight_hh.detach(),
            bias_ih: w.bias_ih.detach(),
            bias_hh: w.bias_hh.detach(),
        };
        let x = batch.x.swap_dims(0, 1); // [T, B, I]
        let head = |h: &Tensor<2>| model.head.forward(h.clone()); // [B, O]
        let curves = state_gradient_norms(kind, &w, x, |states| {
            let last = states.last().expect("at least one step");
            match batch.target {
                BatchTarget::Values(y) => {
                    MseLoss::new().forward(head(last), y, burn::nn::loss::Reduction::Mean)
                }
                BatchTarget::Classes(y) => CrossEntropyLossConfig::new()
                    .init(device)
                    .forward(head(last), y),
                BatchTarget::Steps(y) => {
                    let t = states.len();
                    let ce = CrossEntropyLossConfig::new().init(device);
                    (t - COPY_SYMBOLS..t)
                        .map(|s| {
                            let y_s = y.clone().narrow(1, s, 1).flatten::<1>(0, 1); // [B]
                            ce.forward(head(&states[s]), y_s)
                        })
                        .reduce(|a, b| a + b)
                        .expect("ten recall steps")
                        / COPY_SYMBOLS as f32
                }
            }
        });
        curves.into_iter().next().map_or(Vec::new(), |c| c.norms)
    }

    /// Statistics of `model` on the test set (images) or 2,000 test sequences.
    pub fn test(&self, model: &SequenceNet, device: &Device) -> Result<MemStats> {
        let mut stats = MemStats::default();
        let n = match self.images {
            Some([_, _, t]) => t.len(),
            None => 2000,
        };
        for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
            let items = chunk
                .iter()
                .map(|&i| self.held_out(self.images.map(|[_, _, t]| t), TEST_SEED, i))
                .collect();
            stats.merge(&self.step(model, self.batch(items, device))?.1);
        }
        Ok(stats)
    }
}

impl Task for MemoryTask<'_> {
    type Model = SequenceNet;
    type Batch = MemBatch;
    type Stats = MemStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "sequences"
    }
    fn train_len(&self) -> usize {
        self.epoch_items
    }
    fn valid_len(&self) -> usize {
        self.valid_items
    }
    /// Synthetic problems: fresh sequences every epoch (seeded by the epoch and the item).
    /// Images: a different `epoch_items` of the training images every epoch.
    fn epoch_batches(&self, seed: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let order: Vec<usize> = match self.images {
            Some([train, _, _]) => shuffled_indices(train.len(), seed)
                .into_iter()
                .cycle()
                .take(self.epoch_items)
                .collect(),
            None => (0..self.epoch_items).collect(),
        };
        order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }
    fn train_batch(
        &self,
        indices: &[usize],
        seeds: SampleSeeds,
        device: &Device,
    ) -> Result<MemBatch> {
        let items = indices
            .iter()
            .map(|&i| match self.images {
                Some([train, _, _]) => self.image(train, i),
                None => self.synthetic(seeds.of(i)),
            })
            .collect();
        Ok(self.batch(items, device))
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<MemBatch> {
        let items = indices
            .iter()
            .map(|&i| self.held_out(self.images.map(|[_, v, _]| v), VALID_SEED, i))
            .collect();
        Ok(self.batch(items, device))
    }
    fn train_step(
        &self,
        model: &SequenceNet,
        batch: MemBatch,
        _: (),
    ) -> Result<TrainOutput<MemStats, ()>> {
        let (loss, stats) = self.step(model, batch)?;
        Ok(TrainOutput {
            loss,
            stats,
            carry: (),
        })
    }
    fn valid_step(&self, model: &SequenceNet, batch: MemBatch) -> Result<MemStats> {
        Ok(self.step(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, _: usize) -> usize {
        250
    }
}

/// One trained configuration of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryResult {
    /// The problem.
    pub problem: Problem,
    /// The recurrent layer.
    pub cell: SeqCell,
    /// Gradient clipping (global norm), if any.
    pub clip_norm: Option<f64>,
    /// Optimizer steps trained.
    pub steps: usize,
    /// Final test loss (MSE for adding, cross-entropy per step for copy and per image).
    pub test_loss: f64,
    /// Final test accuracy where the problem has one.
    pub test_accuracy: Option<f64>,
    /// The trivial baseline of the problem (see [`Problem::trivial_baseline`]).
    pub baseline: f64,
    /// Seconds of training.
    pub seconds: f64,
    /// Validation loss after each epoch (the learning curve).
    pub curve: Vec<f64>,
    /// `‖∂L/∂h_t‖`, `t = 1..T`, of the untrained network (see
    /// [`MemoryTask::gradient_through_time`]); empty where not measured.
    #[serde(default)]
    pub gradient_untrained: Vec<f64>,
    /// The same of the trained network.
    #[serde(default)]
    pub gradient_trained: Vec<f64>,
}

/// Trains `cell` on `problem` (the run directory `dir`, created) for `cfg` and tests it.
#[allow(clippy::too_many_arguments)]
pub fn run_one(
    problem: Problem,
    cell: SeqCell,
    hidden: usize,
    images: Option<[&ImageDataset; 3]>,
    cfg: &TrainConfig,
    steps_per_epoch: usize,
    dir: &Path,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<MemoryResult> {
    let task = MemoryTask::new(
        problem,
        images,
        steps_per_epoch * cfg.batch_size,
        1000,
        cfg.seed,
    )?;
    let (inputs, outputs) = problem.sizes();
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let model = SequenceNetConfig::new(inputs, outputs, cell)
        .with_hidden_size(hidden)
        .init(&ad);
    let run = serde_json::json!({
        "task": "memory-bench",
        "problem": problem,
        "cell": cell,
        "hidden": hidden,
        "train": cfg,
    });
    crate::train::run::create_run_dir_with_config(dir, &run)?;
    let gradient_untrained = task.gradient_through_time(&model, &ad);
    let started = std::time::Instant::now();
    let fitted = fit(&task, model, cfg, &run, dir, None, &ad, observer)?;
    let seconds = started.elapsed().as_secs_f64();
    let gradient_trained = task.gradient_through_time(&fitted.model, &ad);
    let model = fitted.model.valid();
    let test = task.test(&model, device)?;
    let m = test.metrics();
    Ok(MemoryResult {
        problem,
        cell,
        clip_norm: cfg.clip_norm,
        steps: steps_per_epoch * cfg.epochs,
        test_loss: m[0].1,
        test_accuracy: m.get(1).map(|a| a.1),
        baseline: problem.trivial_baseline(),
        seconds,
        curve: curve(&fitted.history),
        gradient_untrained,
        gradient_trained,
    })
}

fn curve(history: &[EpochRecord]) -> Vec<f64> {
    history
        .iter()
        .map(|r| {
            r.val
                .0
                .iter()
                .find(|(n, _)| n == "loss")
                .map_or(f64::NAN, |(_, v)| *v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_targets_are_the_marked_sum_and_the_mean_predictor_scores_a_sixth() {
        let task = MemoryTask::new(Problem::Adding { length: 50 }, None, 10, 10, 1).unwrap();
        let mut sq = 0.0;
        let n = 4000;
        for i in 0..n {
            let (x, y) = task.synthetic(i as u64);
            let Target::Value(y) = y else { panic!() };
            let marked: Vec<f32> = (0..50)
                .filter(|&s| x[2 * s + 1] == 1.0)
                .map(|s| x[2 * s])
                .collect();
            assert_eq!(marked.len(), 2);
            assert!((marked[0] + marked[1] - y).abs() < 1e-6);
            sq += ((y - 1.0) as f64).powi(2);
        }
        assert!((sq / n as f64 - 1.0 / 6.0).abs() < 0.01);
    }

    #[test]
    fn the_untrained_tanh_rnn_passes_less_gradient_to_early_steps_than_the_irnn() {
        let device = Device::flex().autodiff();
        let task = MemoryTask::new(Problem::Adding { length: 60 }, None, 10, 10, 1).unwrap();
        let net = |cell| {
            device.seed(3);
            SequenceNetConfig::new(2, 1, cell).init(&device)
        };
        let tanh = task.gradient_through_time(&net(SeqCell::Tanh), &device);
        let irnn = task.gradient_through_time(&net(SeqCell::Irnn), &device);
        assert_eq!((tanh.len(), irnn.len()), (60, 60));
        // The tanh RNN's gradient shrinks by orders of magnitude over 60 steps; the IRNN's
        // identity recurrence carries it back almost unchanged.
        assert!(tanh[0] < 1e-3 * tanh[59], "{} {}", tanh[0], tanh[59]);
        assert!(irnn[0] > 0.5 * irnn[59], "{} {}", irnn[0], irnn[59]);
    }

    #[test]
    fn copy_targets_repeat_the_symbols_after_the_delimiter() {
        let delay = 15;
        let task = MemoryTask::new(Problem::Copy { delay }, None, 10, 10, 1).unwrap();
        let (x, y) = task.synthetic(3);
        let Target::Steps(y) = y else { panic!() };
        let t = delay + 20;
        assert_eq!(y.len(), t);
        let class_at = |s: usize| (0..10).find(|&c| x[s * 10 + c] == 1.0).unwrap();
        for s in 0..10 {
            assert_eq!(y[delay + 10 + s], class_at(s));
            assert!((1..=8).contains(&class_at(s)));
        }
        assert_eq!(class_at(delay + 9), 9);
        assert!(y[..delay + 10].iter().all(|&c| c == 0));
        assert!(
            (Problem::Copy { delay: 100 }.trivial_baseline() - 10.0 * 8f64.ln() / 120.0).abs()
                < 1e-12
        );
    }
}
