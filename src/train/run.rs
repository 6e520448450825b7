//! Run directories, whatever the task: creating one (never over an existing run), its
//! `config.json`, and which task a run belongs to.
//!
//! A run directory is self-describing: `config.json` (the task's configuration, with the
//! training settings and the deepnet version), `metrics.jsonl`, `checkpoint.safetensors` +
//! `optimizer-*.bpk`, `tensorboard/` and `report/`. Evaluating, predicting and resuming need
//! nothing else.

use std::path::Path;

use super::checkpoint::CHECKPOINT_FILE;
use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// File name of the run configuration.
pub const CONFIG_FILE: &str = "config.json";

/// Task name recorded by runs made before `config.json` named its task.
pub const DEFAULT_TASK: &str = "classification";

/// Creates the run directory `dir`, refusing one that already holds a run (a checkpoint):
/// nothing is overwritten. A directory with a config but no checkpoint is a run stopped
/// before its first checkpoint: nothing in it is worth keeping, so it may be started again.
pub fn create_run_dir(dir: &Path) -> Result<()> {
    if dir.join(CHECKPOINT_FILE).exists() {
        return Err(Error::invalid(
            "run directory",
            format!(
                "{} already holds a run; choose another directory, or resume this one",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `config` as `config.json` of `dir`, atomically.
pub fn write_config(dir: &Path, config: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_string_pretty(config).expect("JSON serializes");
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Reads `config.json` of the run directory `dir`.
pub fn read_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_data(&path, format!("not a deepnet run config: {e}")))
}

/// The task a run configuration belongs to (its `task` field; runs of deepnet 0.1 were all
/// image classification).
pub fn task_of(config: &serde_json::Value) -> &str {
    config
        .get("task")
        .and_then(|t| t.as_str())
        .unwrap_or(DEFAULT_TASK)
}

/// Resuming: sets `train.epochs` to `epochs` (the total asked for) when given, and refuses a run
/// whose checkpoint has already trained `done` of them all.
pub fn extend_epochs(train: &mut TrainConfig, epochs: Option<usize>, done: usize) -> Result<()> {
    if let Some(e) = epochs {
        train.epochs = e;
    }
    if done >= train.epochs {
        return Err(Error::invalid(
            "epochs",
            format!(
                "the run already finished {done} of {} epochs; ask for more than {done} epochs in all to train further",
                train.epochs
            ),
        ));
    }
    Ok(())
}
