//! Training: the loop, optimizers and schedules, gradient clipping, metrics, checkpoints and
//! the report of a run.

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod metrics;
pub mod report;
pub mod run;
pub mod trainer;

pub use checkpoint::{read_checkpoint_meta, resolve_checkpoint, CheckpointMeta, TrainState};
pub use clip::{clip_grad_norm, clip_grad_value, global_grad_norm};
pub use config::{DataSource, OptimizerKind, RunConfig, Schedule, TrainConfig};
pub use metrics::{evaluate, EvalReport};
pub use trainer::{train, EpochMetrics, Observer, Silent, StepProgress, TrainData};
