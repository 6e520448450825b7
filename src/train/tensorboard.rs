//! A run's TensorBoard files: `DIR/tensorboard/train/` (per batch: `step/loss`, `step/lr`;
//! per epoch: `epoch/<metric>` and `epoch/throughput`) and `DIR/tensorboard/validation/`
//! (per epoch: `epoch/<metric>`). TensorBoard shows the two folders as two runs with the same
//! tags, so training and validation curves share a chart, as Keras's callback does. Every
//! value is stamped with the global step (batches since the start of the run).
//!
//! A resumed run opens new files whose first event is a restart at the first step it will
//! train: TensorBoard then drops whatever the previous process wrote after its checkpoint,
//! which the resumed run writes again.

use std::path::Path;

use super::history::EpochRecord;
use crate::error::Result;
use crate::io::tfevents::EventWriter;

/// Folder of the TensorBoard files inside a run directory.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// The two event files of a run.
pub struct Board {
    train: EventWriter,
    val: EventWriter,
}

impl Board {
    /// New event files in `run_dir/tensorboard/{train,validation}`; `resume_after`: the global
    /// step of the checkpoint a resumed run starts from.
    pub fn open(run_dir: &Path, resume_after: Option<usize>) -> Result<Self> {
        let root = run_dir.join(TENSORBOARD_DIR);
        let mut board = Board {
            train: EventWriter::create(&root.join("train"))?,
            val: EventWriter::create(&root.join("validation"))?,
        };
        if let Some(step) = resume_after {
            board.train.session_start(step + 1)?;
            board.val.session_start(step + 1)?;
        }
        Ok(board)
    }

    /// The loss and learning rate of batch `step`.
    pub fn step(&mut self, step: usize, loss: f32, lr: f64) -> Result<()> {
        self.train
            .scalars(step, &[("step/loss", loss as f64), ("step/lr", lr)])
    }

    /// An epoch's metrics, at the epoch's last step.
    pub fn epoch(&mut self, r: &EpochRecord) -> Result<()> {
        let tags = |m: &super::history::Metrics| -> Vec<(String, f64)> {
            m.0.iter()
                .map(|(name, v)| (format!("epoch/{name}"), *v))
                .collect()
        };
        let mut train = tags(&r.train);
        train.push(("epoch/throughput".into(), r.throughput));
        let train: Vec<(&str, f64)> = train.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        self.train.scalars(r.global_step, &train)?;
        if !r.val.is_empty() {
            let val = tags(&r.val);
            let val: Vec<(&str, f64)> = val.iter().map(|(t, v)| (t.as_str(), *v)).collect();
            self.val.scalars(r.global_step, &val)?;
        }
        Ok(())
    }

    /// Pushes everything written so far to the files.
    pub fn flush(&mut self) -> Result<()> {
        self.train.flush()?;
        self.val.flush()
    }
}
