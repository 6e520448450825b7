//! Writing PyTorch's `.pth` format (what `torch.save(state_dict, f)` writes since PyTorch 1.6),
//! so a model trained here goes back to PyTorch with `torch.load(f, weights_only=True)` —
//! no pickle code of ours runs there, and torch's restricted unpickler accepts the file.
//!
//! The format: a zip archive (entries stored, not compressed) holding `ARCHIVE/data.pkl`, a
//! pickle (protocol 2) of an `OrderedDict` of tensors, each rebuilt by
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` with
//! the storage a persistent id `('storage', torch.FloatStorage, KEY, 'cpu', numel)` whose
//! bytes are the entry `ARCHIVE/data/KEY` (little-endian); plus `ARCHIVE/version` and
//! `ARCHIVE/byteorder`. Only the opcodes that torch's own pickler emits for a state dict are
//! written. Reading `.pth` files is burn-store's job (see [`crate::weights::StateDict`]).

use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::error::{Error, Result};

/// One tensor to save: float32 values or int64 values (batch norms' `num_batches_tracked`).
#[derive(Debug, Clone, PartialEq)]
pub enum PthValues {
    /// `torch.float32`.
    F32(Vec<f32>),
    /// `torch.int64`.
    I64(Vec<i64>),
}

/// A named tensor of a state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    /// The state-dict key.
    pub name: String,
    /// Its shape (empty: a scalar).
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: PthValues,
}

/// Pickle opcodes (Python's `pickle.py`).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const REDUCE: u8 = b'R';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const SETITEMS: u8 = b'u';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const LONG1: u8 = 0x8a;
    pub const BINPERSID: u8 = b'Q';
    pub const NEWFALSE: u8 = 0x89;
    pub const STOP: u8 = b'.';
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(op::GLOBAL);
        self.0.extend_from_slice(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'\n');
    }
    fn string(&mut self, s: &str) {
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        if let Ok(small) = i32::try_from(v) {
            self.0.push(op::BININT);
            self.0.extend_from_slice(&small.to_le_bytes());
        } else {
            // LONG1: a little-endian two's-complement integer of n bytes.
            let bytes = (v as u64).to_le_bytes();
            self.0.extend_from_slice(&[op::LONG1, 9]);
            self.0.extend_from_slice(&bytes);
            self.0.push(0);
        }
    }
    fn int_tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            self.0.push(op::EMPTY_TUPLE);
            return;
        }
        self.0.push(op::MARK);
        for &v in values {
            self.int(v);
        }
        self.0.push(op::TUPLE);
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.push(op::EMPTY_TUPLE);
        self.0.push(op::REDUCE);
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The bytes of a `.pth` file holding `tensors` as a state dict, in their order.
pub fn encode(tensors: &[PthTensor], archive: &str) -> Result<Vec<u8>> {
    let mut p = Pickle(vec![op::PROTO, 2]);
    p.empty_ordered_dict();
    p.0.push(op::MARK);
    for (i, t) in tensors.iter().enumerate() {
        let numel: usize = t.shape.iter().product();
        let (storage, len) = match &t.values {
            PthValues::F32(v) => ("FloatStorage", v.len()),
            PthValues::I64(v) => ("LongStorage", v.len()),
        };
        if len != numel {
            return Err(Error::invalid(
                "state dict",
                format!("tensor '{}': {len} values for shape {:?}", t.name, t.shape),
            ));
        }
        p.string(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.0.push(op::MARK);
        // The storage, as a persistent id.
        p.0.push(op::MARK);
        p.string("storage");
        p.global("torch", storage);
        p.string(&i.to_string());
        p.string("cpu");
        p.int(numel);
        p.0.push(op::TUPLE);
        p.0.push(op::BINPERSID);
        p.int(0); // storage offset
        p.int_tuple(&t.shape);
        p.int_tuple(&strides(&t.shape));
        p.0.push(op::NEWFALSE); // requires_grad
        p.empty_ordered_dict(); // backward hooks
        p.0.push(op::TUPLE);
        p.0.push(op::REDUCE);
    }
    p.0.push(op::SETITEMS);
    p.0.push(op::STOP);

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // torch aligns storages to 64 bytes so they can be memory-mapped.
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment(64);
    let zerr = |e: zip::result::ZipError| Error::invalid("pth", e.to_string());
    let ioerr = |e: std::io::Error| Error::invalid("pth", e.to_string());
    zip.start_file(format!("{archive}/data.pkl"), stored)
        .map_err(zerr)?;
    zip.write_all(&p.0).map_err(ioerr)?;
    zip.start_file(format!("{archive}/byteorder"), stored)
        .map_err(zerr)?;
    zip.write_all(b"little").map_err(ioerr)?;
    for (i, t) in tensors.iter().enumerate() {
        zip.start_file(format!("{archive}/data/{i}"), stored)
            .map_err(zerr)?;
        let bytes: Vec<u8> = match &t.values {
            PthValues::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PthValues::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        zip.write_all(&bytes).map_err(ioerr)?;
    }
    zip.start_file(format!("{archive}/version"), stored)
        .map_err(zerr)?;
    zip.write_all(b"3\n").map_err(ioerr)?;
    Ok(zip.finish().map_err(zerr)?.into_inner())
}

/// Writes `tensors` as a `.pth` state dict at `path`, atomically.
pub fn write(path: &Path, tensors: &[PthTensor]) -> Result<()> {
    let archive = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or("archive");
    crate::io::write_atomic(path, &encode(tensors, archive)?)
}

/// The bytes of a `.safetensors` file holding `tensors` (float32 and int64), in their order.
pub fn encode_safetensors(tensors: &[PthTensor]) -> Result<Vec<u8>> {
    let data: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|t| match &t.values {
            PthValues::F32(v) => (
                t.name.clone(),
                t.shape.clone(),
                safetensors::Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            PthValues::I64(v) => (
                t.name.clone(),
                t.shape.clone(),
                safetensors::Dtype::I64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views = data
        .iter()
        .map(|(k, shape, dtype, b)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), b).map(|v| (k.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid("state dict", e.to_string()))?;
    safetensors::serialize(views, None).map_err(|e| Error::invalid("state dict", e.to_string()))
}

/// Writes `tensors` as a state dict at `path`, atomically, in the format its extension names:
/// `.pth`/`.pt` (torch.save) or `.safetensors`.
pub fn write_state(path: &Path, tensors: &[PthTensor]) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pth" | "pt") => write(path, tensors),
        Some("safetensors") => crate::io::write_atomic(path, &encode_safetensors(tensors)?),
        _ => Err(Error::invalid(
            "output",
            format!(
                "{}: the file name must end in .pth, .pt or .safetensors",
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn the_pickle_has_one_rebuild_per_tensor_and_the_archive_its_entries() {
        let t = vec![
            PthTensor {
                name: "fc.weight".into(),
                shape: vec![2, 3],
                values: PthValues::F32(vec![1.0; 6]),
            },
            PthTensor {
                name: "bn.num_batches_tracked".into(),
                shape: vec![],
                values: PthValues::I64(vec![0]),
            },
        ];
        let bytes = encode(&t, "m").unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let names: Vec<String> = zip
            .file_names()
            .map(|n| n.map(|n| n.into_owned()).unwrap_or_default())
            .collect();
        for n in [
            "m/data.pkl",
            "m/data/0",
            "m/data/1",
            "m/version",
            "m/byteorder",
        ] {
            assert!(names.iter().any(|x| x == n), "{names:?}");
        }
        let mut pkl = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name("m/data.pkl").unwrap(), &mut pkl).unwrap();
        let text = String::from_utf8_lossy(&pkl);
        assert_eq!(text.matches("_rebuild_tensor_v2").count(), 2);
        assert!(text.contains("FloatStorage") && text.contains("LongStorage"));
        assert_eq!(*pkl.last().unwrap(), b'.');
        let bad = PthTensor {
            name: "x".into(),
            shape: vec![3],
            values: PthValues::F32(vec![1.0]),
        };
        assert!(encode(&[bad], "m").is_err());
    }
}
