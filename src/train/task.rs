//! The task trait: everything the one training loop ([`super::fit`]) needs to know about a
//! task, and nothing about how it trains.
//!
//! Shaped like burn-train's `TrainStep`/`InferenceStep` (burn-train 0.22,
//! `learner/train_val.rs`): a training step maps a batch to a loss and the task's statistics,
//! a validation step maps a batch to statistics. The loop owns everything else — the order of
//! the data, the optimizer, the schedule, clipping, the backward pass, checkpoints, resume,
//! metrics, TensorBoard files, the progress display — so a classification task, a language
//! model and a segmentation network get the same guarantees from the same code. A thin
//! adapter could hand a [`Task`] to burn's `Learner` (its resume does not restore the data
//! order, so deepnet's loop stays the default).
//!
//! A task reads its data by index: the loop decides which items make a batch (seeded, a pure
//! function of the run seed and the epoch) and gives every item its own augmentation seed
//! ([`SampleSeeds`]), so batches can be built in parallel threads, ahead of the step, and a
//! run stopped anywhere and resumed sees exactly the batches an uninterrupted run sees.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::data::shuffled_indices;
pub use crate::data::SampleSeeds;
use crate::error::{Error, Result};
use crate::recurrent::tbptt::Detach;

/// A task's statistics of some batches: summed, so that an epoch's figures are exact whatever
/// the batch sizes, and serialisable, so a checkpoint taken mid-epoch carries the epoch's
/// figures so far.
pub trait Stats: Default + Clone + Send + Serialize + DeserializeOwned + 'static {
    /// Adds the statistics of more batches.
    fn merge(&mut self, other: &Self);
    /// Items counted (images, tokens, pixels...): the throughput's numerator.
    fn items(&self) -> usize;
    /// The task's metrics, in display order, the loss first: `[("loss", 0.41),
    /// ("accuracy", 0.87)]`. These names are the keys of `metrics.jsonl` and the TensorBoard
    /// tags.
    fn metrics(&self) -> Vec<(&'static str, f64)>;
}

/// What a training step returns: the loss to differentiate, the batch's statistics, and the
/// recurrent state to carry into the next chunk of the same batch (truncated BPTT; `()` for
/// tasks without one).
pub struct TrainOutput<S, C> {
    /// Scalar loss `[1]`, still attached to the graph.
    pub loss: Tensor<1>,
    /// Statistics of this batch (or chunk).
    pub stats: S,
    /// State after this chunk; the loop detaches it before the next chunk.
    pub carry: C,
}

impl<S> TrainOutput<S, ()> {
    /// The output of a step of a task without truncated BPTT (no state to carry).
    pub fn new(loss: Tensor<1>, stats: S) -> Self {
        TrainOutput {
            loss,
            stats,
            carry: (),
        }
    }
}

/// A task the training loop can train: its data (by index), its batches, its steps.
///
/// `Sync` because the loop builds the next batches in another thread while the current one
/// trains.
pub trait Task: Sync {
    /// The network.
    type Model: Module + 'static;
    /// A batch of tensors ready for the model.
    type Batch: Send;
    /// The task's summed statistics.
    type Stats: Stats;
    /// State carried between the chunks of a batch in truncated BPTT (`()` when none).
    type Carry: Detach + Default;

    /// What [`Stats::items`] counts, plural: `"images"`, `"tokens"`. Throughput is reported in
    /// this unit per second.
    fn unit(&self) -> &'static str;

    /// Items in the training set.
    fn train_len(&self) -> usize;

    /// Items in the validation set (0: no validation).
    fn valid_len(&self) -> usize;

    /// The batches of one epoch, as lists of training-item indices. The default shuffles all
    /// items with `seed` and cuts the order into batches of `batch_size` (the last may be
    /// smaller). A task may sample otherwise (balanced classes, buckets of similar lengths),
    /// as long as the result is a function of its arguments only.
    fn epoch_batches(&self, seed: u64, batch_size: usize) -> Vec<Vec<usize>> {
        shuffled_indices(self.train_len(), seed)
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Batches per epoch at `batch_size`: what the learning-rate schedule counts with.
    fn batches_per_epoch(&self, batch_size: usize) -> usize {
        self.train_len().div_ceil(batch_size.max(1))
    }

    /// The training batch of items `indices`, on `device`, each item augmented (when the task
    /// augments) with draws seeded by `seeds.of(index)`.
    fn train_batch(
        &self,
        indices: &[usize],
        seeds: SampleSeeds,
        device: &Device,
    ) -> Result<Self::Batch>;

    /// The validation batch of items `indices`, on `device` (no augmentation).
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<Self::Batch>;

    /// Forward pass and loss of one batch (or one chunk of it, in truncated BPTT) in training
    /// mode, starting from state `carry`.
    fn train_step(
        &self,
        model: &Self::Model,
        batch: Self::Batch,
        carry: Self::Carry,
    ) -> Result<TrainOutput<Self::Stats, Self::Carry>>;

    /// Statistics of one validation batch; `model` is in evaluation mode.
    fn valid_step(&self, model: &Self::Model, batch: Self::Batch) -> Result<Self::Stats>;

    /// Whether batches have a time axis that [`split_time`](Self::split_time) can cut
    /// (truncated BPTT). Default: no.
    fn has_time_axis(&self) -> bool {
        false
    }

    /// Cuts `batch` into consecutive chunks of at most `steps` time steps, for truncated BPTT.
    /// Tasks without a time axis keep the default, which refuses.
    fn split_time(&self, batch: Self::Batch, steps: usize) -> Result<Vec<Self::Batch>> {
        let _ = (batch, steps);
        Err(Error::invalid(
            "tbptt",
            "this task has no time axis to truncate backpropagation along",
        ))
    }

    /// Validation batch size when the run does not set one: memory-safe for the task's items.
    /// The default is the training batch size (evaluation needs less memory than training).
    fn default_valid_batch_size(&self, train_batch_size: usize) -> usize {
        train_batch_size.max(1)
    }
}
