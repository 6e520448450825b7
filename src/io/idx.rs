//! Reader for the IDX format of MNIST and Fashion-MNIST (LeCun's "THE IDX FILE FORMAT").
//!
//! Layout: a 4-byte magic `0x00 0x00 TYPE NDIM`, then `NDIM` big-endian `u32` dimensions, then
//! the data, row-major. Files may be gzip-compressed (detected by the gzip magic `1f 8b`, not by
//! the file name). Everything is validated before any value is returned: magic, element type,
//! rank, dimensions and exact length, so a truncated or corrupt file gives an [`Error`] naming
//! the file and the problem.

use std::io::Read;
use std::path::Path;

use super::bounded::{read_file, read_gzip_exact, Limit, MAX_GZIP_RATIO};
use crate::error::{Error, Result};

/// Element type code for unsigned bytes, the only one MNIST-format data sets use.
pub const IDX_U8: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Reads the whole file at `path` (at most [`Limit::IDX`]), gunzipping it when it starts with
/// the gzip magic; the inflated size is capped at [`MAX_GZIP_RATIO`] times the file's.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path, Limit::IDX)?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let cap = raw.len() as u64 * MAX_GZIP_RATIO;
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
    (&mut dec)
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::bad_data(path, format!("gzip stream is corrupt or truncated ({e})")))?;
    if out.len() as u64 > cap {
        return Err(Error::bad_data(
            path,
            "inflates beyond what gzip can honestly hold: not a data file",
        ));
    }
    Ok(out)
}

/// The header of IDX `bytes` (at least its first `4 + 4·ndim` bytes): the dimensions, the
/// element count (checked for overflow) and the header's length, or how many bytes the header
/// needs when `bytes` is too short to hold it yet.
fn parse_header(bytes: &[u8], path: &Path) -> Result<Header> {
    if bytes.len() < 4 {
        return Ok(Header::Need(4));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::bad_data(
            path,
            format!(
                "not an IDX file: magic number {:02x} {:02x} {:02x} {:02x} must start with 00 00",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let dtype = bytes[2];
    if dtype != IDX_U8 {
        return Err(Error::bad_data(
            path,
            format!("IDX element type 0x{dtype:02x} is not supported (MNIST-format data is 0x08, unsigned byte)"),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(Error::bad_data(path, "IDX header declares 0 dimensions"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Ok(Header::Need(header));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::bad_data(path, format!("IDX dimensions {dims:?} overflow")))?;
    Ok(Header::Done {
        dims,
        count,
        len: header,
    })
}

enum Header {
    /// The header needs this many bytes in all.
    Need(usize),
    /// The parsed header.
    Done {
        dims: Vec<usize>,
        count: usize,
        len: usize,
    },
}

/// Parses IDX `bytes` (already decompressed); `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let (dims, count, header) = match parse_header(bytes, path)? {
        Header::Done { dims, count, len } => (dims, count, len),
        Header::Need(4) => {
            return Err(Error::bad_data(
                path,
                format!(
                    "not an IDX file: {} bytes, too short for the 4-byte magic number",
                    bytes.len()
                ),
            ))
        }
        Header::Need(n) => {
            return Err(Error::bad_data(
                path,
                format!(
                    "truncated IDX header: {} dimensions need {n} bytes, file has {}",
                    bytes[3],
                    bytes.len()
                ),
            ))
        }
    };
    let body = bytes.len() - header;
    if body < count {
        return Err(Error::bad_data(
            path,
            format!("truncated: dimensions {dims:?} need {count} bytes of data, file has {body}"),
        ));
    }
    if body > count {
        return Err(Error::bad_data(
            path,
            format!(
                "{} trailing bytes after the {count} bytes that dimensions {dims:?} declare",
                body - count
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads and validates the IDX file at `path` (gzip or raw). A gzip file is inflated only as
/// far as its header declares: the size is checked against the compressed size before
/// inflating, and data beyond it is an error found after one more byte, so a small file that
/// inflates to gigabytes costs no more memory than the data it declares.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = read_file(path, Limit::IDX)?;
    if !is_gzip(&raw) {
        return parse_idx(&raw, path);
    }
    let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
    let corrupt = |e: std::io::Error| {
        Error::bad_data(path, format!("gzip stream is corrupt or truncated ({e})"))
    };
    let mut head = Vec::new();
    let (dims, count) = loop {
        match parse_header(&head, path)? {
            Header::Done { dims, count, .. } => break (dims, count),
            Header::Need(n) => {
                let missing = (n - head.len()) as u64;
                let got = (&mut dec)
                    .take(missing)
                    .read_to_end(&mut head)
                    .map_err(corrupt)?;
                if (got as u64) < missing {
                    // Too short: the in-memory parser words the error.
                    return Err(parse_idx(&head, path)
                        .err()
                        .unwrap_or_else(|| Error::bad_data(path, "truncated IDX header")));
                }
            }
        }
    };
    if count as u64 > raw.len() as u64 * MAX_GZIP_RATIO {
        return Err(Error::bad_data(
            path,
            format!(
                "dimensions {dims:?} declare {count} bytes, more than {} bytes of gzip can hold",
                raw.len()
            ),
        ));
    }
    let mut data = Vec::with_capacity(count);
    read_gzip_exact(&mut dec, count as u64, &mut data, path)?;
    Ok(IdxArray { dims, data })
}

/// Encodes `data` with dimensions `dims` as raw IDX bytes (unsigned byte elements).
///
/// Used to write small test subsets; the inverse of [`parse_idx`].
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, IDX_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("test.idx")
    }

    #[test]
    fn round_trip() {
        let bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse_idx(&bytes, p()).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn truncated_body_is_named() {
        let mut bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        bytes.pop();
        let err = parse_idx(&bytes, p()).unwrap_err().to_string();
        assert!(
            err.contains("test.idx") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic_and_type() {
        let err = parse_idx(b"\x01\x00\x08\x01\0\0\0\x01x", p()).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
        let err = parse_idx(b"\x00\x00\x0d\x01\0\0\0\x01x", p()).unwrap_err();
        assert!(err.to_string().contains("element type 0x0d"), "{err}");
    }

    #[test]
    fn short_header() {
        let err = parse_idx(b"\x00\x00\x08\x03\0\0", p()).unwrap_err();
        assert!(err.to_string().contains("truncated IDX header"), "{err}");
        assert!(parse_idx(b"\x00", p()).is_err());
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_behind_a_valid_header_is_refused_without_inflating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.gz");
        // A valid 2x3 array followed by 64 MiB of zeros (64 KiB compressed).
        let mut bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        bytes.resize(bytes.len() + (64 << 20), 0);
        std::fs::write(&path, gz(&bytes)).unwrap();
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(err.contains("more data than"), "{err}");
        // A header declaring more than the compressed bytes can hold.
        let lie = encode_idx(&[1 << 20, 1 << 10], &[]);
        std::fs::write(&path, gz(&lie)).unwrap();
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
        // The honest file reads; a truncated one is named.
        std::fs::write(&path, gz(&encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]))).unwrap();
        assert_eq!(read_idx(&path).unwrap().data, vec![1, 2, 3, 4, 5, 6]);
        std::fs::write(&path, gz(&encode_idx(&[2, 3], &[1, 2, 3]))).unwrap();
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, gz(b"\x00\x00\x08")).unwrap();
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = encode_idx(&[2], &[1, 2]);
        bytes.push(9);
        let err = parse_idx(&bytes, p()).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
