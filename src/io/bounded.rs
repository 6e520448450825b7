//! Bounded reads: the one place where deepnet reads a whole file into memory.
//!
//! A user can point any command at anything: `/dev/zero`, a FIFO, a directory, a 50 GB file, a
//! 2 MB gzip stream that inflates to 2 GB. [`read_file`] takes regular files only and refuses
//! one larger than the caller's [`Limit`] before reading a byte; [`read_gzip_exact`] inflates no
//! more than the caller expects (plus one byte, to detect trailing data). So memory is bounded
//! by what a legitimate file of that kind needs, and the answer is one line naming the file.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// How large a file of some kind may be: its name in messages and its cap in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, for the message ("a .npy input").
    pub what: &'static str,
    /// The most bytes it may hold.
    pub bytes: u64,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Limit {
    /// An image to classify or a training image: 256 MiB (a 10,000×10,000 RGB BMP is 300 MB
    /// decoded, its PNG far less).
    pub const IMAGE: Limit = Limit {
        what: "an image",
        bytes: 256 * MIB,
    };
    /// A `.npy` input of `deepnet infer`: 2 GiB.
    pub const NPY: Limit = Limit {
        what: "a .npy input",
        bytes: 2 * GIB,
    };
    /// Weights or a checkpoint (VGG-16's are 550 MB): 4 GiB.
    pub const WEIGHTS: Limit = Limit {
        what: "a weights file",
        bytes: 4 * GIB,
    };
    /// An IDX file as stored (Fashion-MNIST's training images are 26 MB gzipped, 47 MB raw):
    /// 2 GiB.
    pub const IDX: Limit = Limit {
        what: "an IDX file",
        bytes: 2 * GIB,
    };
    /// A text file of a corpus (the largest fortune file is 1.4 MB): 64 MiB.
    pub const TEXT: Limit = Limit {
        what: "a text file",
        bytes: 64 * MIB,
    };
    /// A JSON or JSON-lines file deepnet wrote (configs, metrics, results): 256 MiB.
    pub const JSON: Limit = Limit {
        what: "a JSON file",
        bytes: 256 * MIB,
    };
    /// A TensorBoard event file: 1 GiB.
    pub const EVENTS: Limit = Limit {
        what: "an event file",
        bytes: GIB,
    };
}

/// Reads the regular file at `path` whole, if it holds at most `limit.bytes`. A device, FIFO,
/// socket or directory is refused before it is opened for reading, a larger file before a byte
/// is read (and a file that grows while being read is cut at the limit and refused).
pub fn read_file(path: &Path, limit: Limit) -> Result<Vec<u8>> {
    let len = check_file(path, limit)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit.bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    check_size(path, bytes.len() as u64, limit)?;
    Ok(bytes)
}

/// Checks that `path` is a regular file of at most `limit.bytes` (for readers that stream the
/// file themselves); returns its length.
pub fn check_file(path: &Path, limit: Limit) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(Error::bad_data(
            path,
            format!("is {kind}; {} must be a regular file", limit.what),
        ));
    }
    check_size(path, meta.len(), limit)?;
    Ok(meta.len())
}

/// [`read_file`], then UTF-8.
pub fn read_text(path: &Path, limit: Limit) -> Result<String> {
    String::from_utf8(read_file(path, limit)?)
        .map_err(|_| Error::bad_data(path, "is not UTF-8 text"))
}

fn check_size(path: &Path, len: u64, limit: Limit) -> Result<()> {
    if len > limit.bytes {
        return Err(Error::bad_data(
            path,
            format!(
                "is {}, more than the {} that deepnet reads as {}",
                human(len),
                human(limit.bytes),
                limit.what
            ),
        ));
    }
    Ok(())
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `7 bytes`.
fn human(n: u64) -> String {
    match n {
        n if n >= GIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// Deflate expands at most about 1032:1; a header that declares more than this many times the
/// compressed size cannot be honest.
pub const MAX_GZIP_RATIO: u64 = 1100;

/// Reads exactly `len` bytes from the decompressing reader `r` into `out`: an error if the
/// stream ends early (truncated) or holds more (trailing data, which is how a decompression
/// bomb hides behind a valid header). Never inflates more than `len + 1` bytes.
pub fn read_gzip_exact(r: &mut impl Read, len: u64, out: &mut Vec<u8>, path: &Path) -> Result<()> {
    let corrupt = |e: std::io::Error| {
        Error::bad_data(path, format!("gzip stream is corrupt or truncated ({e})"))
    };
    let before = out.len() as u64;
    r.take(len).read_to_end(out).map_err(corrupt)?;
    let got = out.len() as u64 - before;
    if got < len {
        return Err(Error::bad_data(
            path,
            format!("truncated: the header declares {len} bytes of data, the file holds {got}"),
        ));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(corrupt)? > 0 {
        return Err(Error::bad_data(
            path,
            format!("holds more data than the {len} bytes its header declares"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_large_files_are_refused_before_reading() {
        let e = read_file(Path::new("/dev/zero"), Limit::NPY).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_file(Path::new("/tmp"), Limit::NPY).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![0u8; 3000]).unwrap();
        let small = Limit {
            what: "a test file",
            bytes: 2048,
        };
        let e = read_file(&f, small).unwrap_err();
        assert!(e.to_string().contains("more than the 2.0 KiB"), "{e}");
        assert_eq!(read_file(&f, Limit::NPY).unwrap().len(), 3000);
    }

    #[test]
    fn gzip_reads_stop_at_the_declared_length() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![7u8; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let p = Path::new("x.gz");
        let mut out = Vec::new();
        let e = read_gzip_exact(&mut flate2::read::GzDecoder::new(&gz[..]), 100, &mut out, p)
            .unwrap_err();
        assert!(e.to_string().contains("more data than"), "{e}");
        assert!(out.len() <= 101);
        let mut out = Vec::new();
        let e = read_gzip_exact(
            &mut flate2::read::GzDecoder::new(&gz[..]),
            2 << 20,
            &mut out,
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut out = Vec::new();
        read_gzip_exact(
            &mut flate2::read::GzDecoder::new(&gz[..]),
            1 << 20,
            &mut out,
            p,
        )
        .unwrap();
        assert_eq!(out.len(), 1 << 20);
    }
}
