//! NumPy `.npy` files (format versions 1–3) holding little-endian float32 arrays in C order:
//! the input and output of `deepnet infer`.

use std::path::Path;

use crate::error::{Error, Result};

/// A float32 array: its shape and its values in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` file; anything but a C-order little-endian float32 array is refused with a
/// message that names the file and what it holds.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = super::read_file(path, super::Limit::NPY)?;
    parse_npy(&bytes, path)
}

/// Parses `.npy` bytes; `path` names them in errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let bad = |why: String| Error::bad_data(path, why);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad(format!(".npy format version {major} is not supported"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = String::from_utf8_lossy(header);
    let field = |name: &str| -> Option<String> {
        let at = header.find(&format!("'{name}'"))?;
        let rest = header[at + name.len() + 2..]
            .trim_start()
            .strip_prefix(':')?;
        Some(rest.trim_start().to_string())
    };
    let descr = field("descr").ok_or_else(|| bad("header has no 'descr'".into()))?;
    let descr = descr.split('\'').nth(1).unwrap_or("").to_string();
    if descr != "<f4" && descr != "f4" {
        return Err(bad(format!(
            "holds dtype '{descr}'; deepnet needs float32 ('<f4'): convert with x.astype(np.float32)"
        )));
    }
    let fortran =
        field("fortran_order").ok_or_else(|| bad("header has no 'fortran_order'".into()))?;
    if fortran.starts_with("True") {
        return Err(bad(
            "is in Fortran order; save a C-order array (np.ascontiguousarray)".into(),
        ));
    }
    let shape_text = field("shape").ok_or_else(|| bad("header has no 'shape'".into()))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("cannot read the shape {shape_text}")))?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("cannot read the shape ({inner})")))?;
    let need = shape
        .iter()
        .try_fold(4usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large (its size overflows)")))?;
    let body = &bytes[start + header_len..];
    if body.len() != need {
        return Err(bad(format!(
            "shape {shape:?} needs {need} bytes of data, the file has {}",
            body.len()
        )));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

/// The `.npy` (version 1.0) bytes of a float32 array.
pub fn encode_npy(array: &NpyArray) -> Vec<u8> {
    let dims: Vec<String> = array.shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces so that the data starts at a multiple of 64 bytes, newline-terminated.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + array.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &array.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_dtypes() {
        let a = NpyArray {
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.25],
        };
        let bytes = encode_npy(&a);
        assert_eq!((bytes.len() - 24) % 64, 0, "data aligned to 64 bytes");
        assert_eq!(parse_npy(&bytes, Path::new("a.npy")).unwrap(), a);
        let mut f8 = bytes.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        let err = parse_npy(&f8, Path::new("b.npy")).unwrap_err().to_string();
        assert!(err.contains("'<f8'") && err.contains("float32"), "{err}");
        let err = parse_npy(&bytes[..bytes.len() - 4], Path::new("c.npy"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 24 bytes"), "{err}");
    }
}
