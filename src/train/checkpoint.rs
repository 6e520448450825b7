//! Checkpoints: model weights in safetensors (readable from PyTorch with `safetensors.torch`),
//! optimizer state in burnpack, both written atomically.
//!
//! A checkpoint is `checkpoint.safetensors`, whose safetensors metadata carries the run's
//! configuration (the task's, as JSON) and the [`TrainState`] (so the file alone says which
//! model it holds and where training stands, the epochs' records included), plus the optimizer
//! file that state names (`optimizer-eNNNN.bpk`, or `optimizer-eNNNN-sNNNNNNNN.bpk` for a
//! checkpoint taken mid-epoch). Saving writes the optimizer file first and the weights last,
//! each to a temporary file that is fsynced and renamed over the old one: a process killed at
//! any moment leaves either the previous checkpoint or the new one, never a torn file, and the
//! weights file always names an optimizer file that exists.
//!
//! The weights file's metadata also carries the CRC-32C of its tensor data
//! (`deepnet.data_crc32c`), checked on every load: a file damaged on disk or in a copy is an
//! error naming it, not a run that silently diverges later. (Files written before the checksum
//! existed load unchecked.)

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::store::{ModuleSnapshot, ModuleStore, SafetensorsStore};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::history::EpochRecord;
use crate::error::{Error, Result};
use crate::io::safetensors_header::{header, metadata, read_metadata};
use crate::io::StagedFile;

/// File name of the weights inside a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const META_RUN: &str = "deepnet.run";
const META_STATE: &str = "deepnet.state";
const META_PARAM_IDS: &str = "deepnet.param_ids";
const META_CRC: &str = "deepnet.data_crc32c";

/// The parameter ids of a module in visit order. burn's optimizer keys its state (Adam's
/// moments, momentum) by parameter id, and safetensors has no place for ids: the checkpoint
/// stores them in its metadata so a resumed optimizer finds its state again.
struct CollectIds(Vec<u64>);

impl ModuleVisitor for CollectIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// Gives a module's parameters the ids recorded by [`CollectIds`], in the same visit order.
struct AssignIds<'a>(std::slice::Iter<'a, u64>);

impl ModuleMapper for AssignIds<'_> {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(&id) = self.0.next() {
            param.id = ParamId::from(id);
        }
        param
    }
}

fn param_ids<M: Module>(model: &M) -> Vec<u64> {
    let mut ids = CollectIds(Vec::new());
    model.visit(&mut ids);
    ids.0
}

/// Where training stands when a checkpoint is written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches trained since the start of the run.
    pub global_step: usize,
    /// File name (in the same directory) of the optimizer state.
    pub optimizer_file: String,
    /// The epoch in progress, for a checkpoint taken mid-epoch (`checkpoint_every`).
    #[serde(default)]
    pub partial: Option<PartialEpoch>,
    /// The records of the completed epochs (what `metrics.jsonl` holds): a resumed run
    /// rewrites `metrics.jsonl` from them, so the file has exactly one line per finished
    /// epoch however the previous process ended. Empty in checkpoints of deepnet 0.1.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
}

/// How far an epoch got when a checkpoint was taken in its middle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch already trained.
    pub batches_done: usize,
    /// The task's statistics of those batches (the task's `Stats` as JSON).
    pub stats: serde_json::Value,
    /// Training seconds spent on them.
    pub seconds: f64,
}

/// What a checkpoint's metadata says.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMeta {
    /// The configuration of the run that wrote it (the task's own type, as JSON).
    pub run: serde_json::Value,
    /// Training progress.
    pub state: TrainState,
}

/// The moments inside [`save_checkpoint`] a caller can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePhase {
    /// The optimizer file is in place and the new weights are written and synced under a
    /// temporary name, not yet renamed over the old checkpoint.
    WeightsStaged,
}

/// `path` itself if it is a file, `path/checkpoint.safetensors` if it is a run directory.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let file = path.join(CHECKPOINT_FILE);
        if file.is_file() {
            Ok(file)
        } else {
            Err(Error::checkpoint(
                path,
                format!("no {CHECKPOINT_FILE} in this directory (is it a deepnet run directory? training writes one after the first epoch)"),
            ))
        }
    } else if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(Error::checkpoint(path, "no such file or directory"))
    }
}

/// The model's weights as safetensors bytes, with `metadata` in the header.
pub fn weights_to_safetensors<M: Module>(
    model: &M,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    for (k, v) in metadata {
        store = store.metadata(*k, v.clone());
    }
    store
        .collect_from(model)
        .map_err(|e| Error::checkpoint("<memory>", format!("serializing weights: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| Error::checkpoint("<memory>", format!("serializing weights: {e}")))?;
    with_checksum(bytes)
}

/// The safetensors `bytes` with the CRC-32C of their tensor data added to the header's
/// metadata. The data section is unchanged (tensor offsets are relative to its start), the
/// header is padded with spaces to a multiple of 8 bytes, as safetensors writes it.
fn with_checksum(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let origin = Path::new("<memory>");
    let mut head = header(&bytes, origin)?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let data = &bytes[8 + n..];
    let crc = format!("{:08x}", crc32c::crc32c(data));
    let meta = head
        .entry("__metadata__")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(m) = meta {
        m.insert(META_CRC.into(), crc.into());
    }
    let mut json = serde_json::to_vec(&head).expect("a header serializes");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    Ok(out)
}

/// Checks the CRC-32C that [`weights_to_safetensors`] recorded against the tensor data of
/// `bytes` read from `path`; a file without one passes.
fn verify_checksum(bytes: &[u8], path: &Path) -> Result<()> {
    let meta = metadata(&header(bytes, path)?);
    let Some(expected) = meta.get(META_CRC) else {
        return Ok(());
    };
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let found = format!("{:08x}", crc32c::crc32c(&bytes[8 + n..]));
    if *expected != found {
        return Err(Error::checkpoint(
            path,
            format!(
                "is damaged: the checksum of its tensor data is {found}, the file recorded {expected} (restore it from a copy)"
            ),
        ));
    }
    Ok(())
}

/// Saves `model` and `optim` as the checkpoint of the run in `dir` (see the module doc);
/// `run` is the run's configuration as JSON. `phase` is called at each [`SavePhase`].
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    run: &serde_json::Value,
    state: &TrainState,
    phase: &mut dyn FnMut(SavePhase),
) -> Result<()> {
    let optim_path = dir.join(&state.optimizer_file);
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| Error::checkpoint(&optim_path, format!("serializing optimizer state: {e}")))?;
    StagedFile::write(&optim_path, &optim_bytes)?.commit()?;
    let state_json = serde_json::to_string(state).expect("TrainState serializes");
    let ids_json = serde_json::to_string(&param_ids(model)).expect("ids serialize");
    let bytes = weights_to_safetensors(
        model,
        &[
            (META_RUN, run.to_string()),
            (META_STATE, state_json),
            (META_PARAM_IDS, ids_json),
        ],
    )?;
    let staged = StagedFile::write(&dir.join(CHECKPOINT_FILE), &bytes)?;
    phase(SavePhase::WeightsStaged);
    staged.commit()?;
    // Older optimizer files are no longer named by any checkpoint.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("optimizer-")
                && name.ends_with(".bpk")
                && name != state.optimizer_file
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// The run configuration (as JSON) and training state recorded in the checkpoint at `path`.
pub fn read_checkpoint_meta(path: &Path) -> Result<CheckpointMeta> {
    let meta = read_metadata(path)?;
    let run = meta.get(META_RUN).ok_or_else(|| {
        Error::checkpoint(
            path,
            "has no deepnet run metadata (not a checkpoint written by deepnet's training)",
        )
    })?;
    let state = meta
        .get(META_STATE)
        .ok_or_else(|| Error::checkpoint(path, "has no deepnet training-state metadata"))?;
    Ok(CheckpointMeta {
        run: serde_json::from_str(run)
            .map_err(|e| Error::checkpoint(path, format!("run metadata unreadable: {e}")))?,
        state: serde_json::from_str(state)
            .map_err(|e| Error::checkpoint(path, format!("state metadata unreadable: {e}")))?,
    })
}

/// Loads the weights in the safetensors file at `path` into `model`, name for name. Missing,
/// unexpected or mis-shaped tensors give an error naming the key (and both shapes).
pub fn load_weights<M: Module>(mut model: M, path: &Path) -> Result<M> {
    let bytes = crate::io::read_file(path, crate::io::Limit::WEIGHTS)?;
    verify_checksum(&bytes, path)?;
    let ids: Option<Vec<u64>> = metadata(&header(&bytes, path)?)
        .get(META_PARAM_IDS)
        .and_then(|s| serde_json::from_str(s).ok());
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::checkpoint(path, format!("cannot read weights: {e}")))?;
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(k, _)| format!("tensor '{k}' is missing from the file")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|k| format!("tensor '{k}' in the file matches no parameter of the model")),
    );
    if !problems.is_empty() {
        let shown = problems.len().min(8);
        let more = if problems.len() > shown {
            format!(" (and {} more)", problems.len() - shown)
        } else {
            String::new()
        };
        return Err(Error::checkpoint(
            path,
            format!(
                "weights do not fit this model (is it a checkpoint of another model?): {}{more}",
                problems[..shown].join("; ")
            ),
        ));
    }
    if let Some(ids) = ids {
        if ids.len() == param_ids(&model).len() {
            model = model.map(&mut AssignIds(ids.iter()));
        }
    }
    Ok(model)
}

/// Loads the optimizer state file at `path` into `optim`.
pub fn load_optimizer(optim: ModuleOptimizer, path: &Path) -> Result<ModuleOptimizer> {
    let bytes = crate::io::read_file(path, crate::io::Limit::WEIGHTS)?;
    optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| Error::checkpoint(path, format!("cannot read optimizer state: {e}")))
}
