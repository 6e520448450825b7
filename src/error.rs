//! The one error type of the library. Every message names the file, key or argument at fault,
//! so the CLI can print it as is.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in deepnet, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A data file exists but its contents are not what they must be.
    #[error("{path}: {reason}")]
    BadData {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument or configuration value is out of range or unknown.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument or config key.
        what: String,
        /// Why it is refused.
        reason: String,
    },
    /// A checkpoint or weights file does not fit the model it is loaded into.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Training stopped because the loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: loss is {loss}; the last good checkpoint is kept. Try a lower learning rate or gradient clipping")]
    Diverged {
        /// Epoch (1-based) in which the loss went bad.
        epoch: usize,
        /// Global optimizer step at which the loss went bad.
        step: usize,
        /// The offending loss value.
        loss: f32,
    },
    /// Drawing a chart failed.
    #[error("drawing {path}: {reason}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// What the plotting library said.
        reason: String,
    },
}

/// Result alias used across deepnet.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Bad contents in the file at `path`.
    pub fn bad_data(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::BadData {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// An invalid argument `what`.
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// A checkpoint at `path` that does not fit.
    pub fn checkpoint(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}
