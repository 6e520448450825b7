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
///
/// The directory is locked for this process ([`lock_run_dir`]) before anything is written.
pub fn create_run_dir(dir: &Path) -> Result<()> {
    refuse_existing_run(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    lock_run_dir(dir)?;
    // Another process may have finished a run here between the check and the lock.
    if dir.join(CHECKPOINT_FILE).exists() {
        return Err(Error::invalid(
            "run directory",
            format!("{} already holds a run", dir.display()),
        ));
    }
    Ok(())
}

/// File name of a run directory's lock.
pub const LOCK_FILE: &str = ".lock";

/// Run directories this process holds locked, with the open lock files that hold the locks.
static LOCKED: std::sync::Mutex<Vec<(std::path::PathBuf, std::fs::File)>> =
    std::sync::Mutex::new(Vec::new());

/// Takes an exclusive OS lock (`flock`) on `dir/.lock` for the rest of this process, so that
/// two processes never write one run: the second gets an error naming the first's process id.
/// The operating system releases the lock when the process ends, however it ends (a run killed
/// with SIGKILL can be resumed at once). Locking a directory this process holds already is a
/// no-op.
pub fn lock_run_dir(dir: &Path) -> Result<()> {
    use std::io::Write;
    let key = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let mut held = LOCKED.lock().unwrap_or_else(|p| p.into_inner());
    if held.iter().any(|(d, _)| *d == key) {
        return Ok(());
    }
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(Error::bad_data(
                dir,
                format!(
                    "is in use by another deepnet process{}; wait for it to end or choose another directory",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    writeln!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
    held.push((key, file));
    Ok(())
}

/// Refuses `dir` when it already holds a run: called before a task reads its data, so the
/// error comes at once; [`create_run_dir_with_config`] checks again under the run lock.
pub fn refuse_existing_run(dir: &Path) -> Result<()> {
    if dir.join(CHECKPOINT_FILE).exists() {
        return Err(Error::invalid(
            "run directory",
            format!(
                "{} already holds a run; choose another directory, or resume this one",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Creates and locks the run directory `dir` ([`create_run_dir`]) and writes the run's
/// configuration to its `config.json`.
pub fn create_run_dir_with_config<R: serde::Serialize>(dir: &Path, run: &R) -> Result<()> {
    create_run_dir(dir)?;
    write_config(dir, &serde_json::to_value(run).expect("run serializes"))
}

/// Writes `config` as `config.json` of `dir`, atomically.
pub fn write_config(dir: &Path, config: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_string_pretty(config).expect("JSON serializes");
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Reads `config.json` of the run directory `dir`.
pub fn read_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(CONFIG_FILE);
    let text = crate::io::read_text(&path, crate::io::Limit::JSON)?;
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

/// The configuration `v` (read from `origin`) of a run of task `task`, which users know as a
/// `what` run ("language-identification"): an error naming the task it holds instead, or what
/// does not fit.
pub fn task_config<R: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    origin: &Path,
    task: &str,
    what: &str,
) -> Result<R> {
    if task_of(&v) != task {
        return Err(Error::bad_data(
            origin,
            format!("holds a {} run, not a {what} ({task}) run", task_of(&v)),
        ));
    }
    serde_json::from_value(v)
        .map_err(|e| Error::bad_data(origin, format!("not a {what} run config: {e}")))
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

/// The first half of resuming any task's run in `dir`: its configuration (a `what` run of task
/// `task`), the run directory locked, its last checkpoint's metadata, the epochs extended to
/// `epochs` in all (the configuration's training settings are what `train_of` points at), and
/// the configuration written back.
pub fn resume_config<R: serde::de::DeserializeOwned + serde::Serialize>(
    dir: &Path,
    task: &str,
    what: &str,
    epochs: Option<usize>,
    train_of: impl FnOnce(&mut R) -> &mut TrainConfig,
) -> Result<(R, super::checkpoint::CheckpointMeta)> {
    let mut run: R = task_config(read_config(dir)?, &dir.join(CONFIG_FILE), task, what)?;
    lock_run_dir(dir)?;
    let meta =
        super::checkpoint::read_checkpoint_meta(&super::checkpoint::resolve_checkpoint(dir)?)?;
    extend_epochs(train_of(&mut run), epochs, meta.state.epoch)?;
    write_config(dir, &serde_json::to_value(&run).expect("run serializes"))?;
    Ok((run, meta))
}
