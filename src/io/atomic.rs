//! Atomic file replacement: write a temporary file in the same directory, fsync it, rename it
//! over the target, fsync the directory. A reader (or a process restarted after `kill -9`)
//! sees the old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file written and synced under a temporary name beside its target, not yet visible
/// under the target's name. [`commit`](Self::commit) renames it into place; dropping it
/// uncommitted removes the temporary file.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Writes `bytes` to a temporary file beside `target` and syncs it to disk.
    pub fn write(target: &Path, bytes: &[u8]) -> Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent_dir(target).join(format!(".{name}.tmp-{}", std::process::id()));
        let staged = StagedFile {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        };
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&staged.tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        // On failure `staged` is dropped, which removes the partial temporary file.
        write().map_err(|e| Error::io(target, e))?;
        Ok(staged)
    }

    /// Renames the temporary file over the target and syncs the directory, so the rename
    /// itself survives a power cut.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        if let Ok(d) = std::fs::File::open(parent_dir(&self.target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    StagedFile::write(path, bytes)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_file_is_invisible_until_committed_and_cleaned_up_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"old").unwrap();
        let staged = StagedFile::write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        StagedFile::write(&path, b"new").unwrap().commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
