//! Reader for the IDX format of MNIST and Fashion-MNIST (LeCun's "THE IDX FILE FORMAT").
//!
//! Layout: a 4-byte magic `0x00 0x00 TYPE NDIM`, then `NDIM` big-endian `u32` dimensions, then
//! the data, row-major. Files may be gzip-compressed (detected by the gzip magic `1f 8b`, not by
//! the file name). Everything is validated before any value is returned: magic, element type,
//! rank, dimensions and exact length, so a truncated or corrupt file gives an [`Error`] naming
//! the file and the problem.

use std::io::Read;
use std::path::Path;

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

/// Reads the whole file at `path`, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::bad_data(path, format!("gzip stream is corrupt or truncated ({e})"))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX `bytes` (already decompressed); `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::bad_data(
            path,
            format!(
                "not an IDX file: {} bytes, too short for the 4-byte magic number",
                bytes.len()
            ),
        ));
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
        return Err(Error::bad_data(
            path,
            format!(
                "truncated IDX header: {ndim} dimensions need {header} bytes, file has {}",
                bytes.len()
            ),
        ));
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

/// Reads and validates the IDX file at `path` (gzip or raw).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    parse_idx(&bytes, path)
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

    #[test]
    fn trailing_bytes() {
        let mut bytes = encode_idx(&[2], &[1, 2]);
        bytes.push(9);
        let err = parse_idx(&bytes, p()).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
