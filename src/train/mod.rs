//! Training, for every task: the [`Task`] trait, the one loop ([`fit`]), optimizers and
//! schedules, global-norm clipping, checkpoints, the epochs' records, TensorBoard files and
//! run directories, corpus BLEU, teacher forcing's targets and loss.

pub mod bleu;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod groups;
pub mod history;
pub mod run;
pub mod task;
pub mod tensorboard;
pub mod tokens;
pub mod trainer;

pub use checkpoint::{read_checkpoint_meta, resolve_checkpoint, CheckpointMeta, TrainState};
pub use clip::{clip_grad_norm, clip_grad_value, global_grad_norm};
pub use config::{OptimizerKind, Schedule, TrainConfig};
pub use groups::LrGroup;
pub use history::{read_history, EpochRecord, Metrics, METRICS_FILE};
pub use task::{SampleSeeds, Stats, Task, TrainOutput};
pub use trainer::{fit, Fitted, LoopPoint, Observer, Silent, StepProgress};
