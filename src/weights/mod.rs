//! PyTorch-style state dicts: named f32 tensors read from and written to `.safetensors`
//! files, with the checks that make a wrong file fail with a message naming the key.

pub mod paths;
pub mod torchvision;

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};

/// One tensor of a state dict: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// A state dict: tensors by PyTorch name (`weight_ih_l0`, `layer1.0.conv1.weight`, ...), and
/// where they came from, for error messages.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// Where the tensors came from (a file name, or a description).
    pub source: String,
    /// The tensors by name.
    pub tensors: BTreeMap<String, TensorEntry>,
}

impl StateDict {
    /// An empty state dict described as `source`.
    pub fn new(source: impl Into<String>) -> Self {
        StateDict {
            source: source.into(),
            tensors: BTreeMap::new(),
        }
    }

    /// Reads every tensor of a `.safetensors` file (f32, f64, f16 and bf16 are converted to f32).
    pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::io::read_file(path, crate::io::Limit::WEIGHTS)?;
        Self::parse_safetensors(&bytes, path)
    }

    /// Reads a state dict from `path`: PyTorch's `torch.save` format (`.pth`, `.pt`, `.bin`;
    /// the zip format and the legacy one, read without running any pickle code, a nested
    /// `state_dict` entry unwrapped) or safetensors (anything else).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()) {
            Some("pth" | "pt" | "bin") => Self::read_pth(path),
            _ => Self::read_safetensors(path),
        }
    }

    /// Reads the float tensors of a file written by `torch.save` (a state dict, or a checkpoint
    /// whose `state_dict` entry is one). Integer tensors (`num_batches_tracked`) are skipped.
    pub fn read_pth(path: impl AsRef<Path>) -> Result<Self> {
        use burn::store::pytorch_reader::{DType, PytorchReader};
        let path = path.as_ref();
        crate::io::bounded::check_file(path, crate::io::Limit::WEIGHTS)?;
        let bad = |why: String| Error::bad_data(path, why);
        let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
            Ok(r) if !r.is_empty() => r,
            _ => PytorchReader::new(path)
                .map_err(|e| bad(format!("not a readable PyTorch file: {e}")))?,
        };
        let mut dict = StateDict::new(path.display().to_string());
        for (name, t) in reader.into_tensors() {
            let bytes = t
                .read()
                .map_err(|e| bad(format!("cannot read tensor '{name}': {e}")))?;
            let data: Vec<f32> = match t.dtype() {
                DType::F32 => bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                DType::F64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_ne_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                DType::F16 => bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_ne_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                DType::BF16 => bytes
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_ne_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                _ => continue, // counters such as num_batches_tracked
            };
            if data.len() != t.num_elements() {
                return Err(bad(format!(
                    "tensor '{name}' holds {} values for shape {:?}",
                    data.len(),
                    t.shape()
                )));
            }
            dict.tensors.insert(
                name,
                TensorEntry {
                    shape: t.shape().to_vec(),
                    data,
                },
            );
        }
        if dict.tensors.is_empty() {
            return Err(bad("holds no floating-point tensors".into()));
        }
        Ok(dict)
    }

    /// Parses safetensors `bytes`; `path` names them in errors.
    pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<Self> {
        use safetensors::Dtype;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::bad_data(path, format!("not a valid safetensors file: {e}")))?;
        let mut dict = StateDict::new(path.display().to_string());
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                // Batch norms' counters, as torch saves them with every state dict: skipped,
                // as the .pth reader does.
                Dtype::I64 if name.ends_with("num_batches_tracked") => continue,
                other => {
                    return Err(Error::bad_data(
                        path,
                        format!("tensor '{name}' has dtype {other:?}; only floating-point tensors can be loaded"),
                    ))
                }
            };
            dict.tensors.insert(
                name,
                TensorEntry {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(dict)
    }

    /// The state dict as safetensors bytes (f32, names sorted).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), t.shape.clone(), b)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, shape, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid("state dict", e.to_string()))?;
        safetensors::serialize(views, None).map_err(|e| Error::invalid("state dict", e.to_string()))
    }

    /// Writes the state dict to `path` as safetensors, atomically.
    pub fn write_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomic(path.as_ref(), &self.to_safetensors()?)
    }

    /// Adds `tensor` under `name`.
    pub fn insert<const D: usize>(&mut self, name: impl Into<String>, tensor: Tensor<D>) {
        let shape = tensor.dims().to_vec();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        self.tensors
            .insert(name.into(), TensorEntry { shape, data });
    }

    /// The tensor `name` on `device`, which must have shape `expected`; the error names the key
    /// and both shapes.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let entry = self.tensors.get(name).ok_or_else(|| {
            Error::bad_data(
                &self.source,
                format!("tensor '{name}' (shape {expected:?}) is missing"),
            )
        })?;
        if entry.shape != expected {
            return Err(Error::bad_data(
                &self.source,
                format!(
                    "tensor '{name}' has shape {:?}, the model expects {expected:?}",
                    entry.shape
                ),
            ));
        }
        Ok(Tensor::from_data(
            TensorData::new(entry.data.clone(), expected),
            device,
        ))
    }

    /// Fails if the dict holds a name outside `used`: a file for another architecture or
    /// configuration should not load silently.
    pub fn check_no_unexpected<'a>(&self, used: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let used: std::collections::BTreeSet<&str> = used.into_iter().collect();
        let extra: Vec<&str> = self
            .tensors
            .keys()
            .map(String::as_str)
            .filter(|k| !used.contains(k))
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(Error::bad_data(
                &self.source,
                format!(
                    "tensor{} {} match{} no parameter of the model",
                    if extra.len() > 1 { "s" } else { "" },
                    extra
                        .iter()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if extra.len() > 1 { "" } else { "es" }
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_batch_norm_counters_are_skipped_like_the_pth_loader_skips_them() {
        // What `safetensors.torch.save_file(resnet.state_dict())` writes: float weights and an
        // I64 `num_batches_tracked` per batch norm.
        use safetensors::tensor::TensorView;
        use safetensors::Dtype;
        let w: Vec<u8> = [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let n: Vec<u8> = 7i64.to_le_bytes().to_vec();
        let views = vec![
            (
                "bn1.weight",
                TensorView::new(Dtype::F32, vec![2], &w).unwrap(),
            ),
            (
                "bn1.num_batches_tracked",
                TensorView::new(Dtype::I64, vec![], &n).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).unwrap();
        let dict = StateDict::parse_safetensors(&bytes, Path::new("r.safetensors")).unwrap();
        assert_eq!(dict.tensors.len(), 1);
        assert!(dict.tensors.contains_key("bn1.weight"));
        // Another integer tensor is still refused, named.
        let views = vec![("fc.index", TensorView::new(Dtype::I64, vec![], &n).unwrap())];
        let bytes = safetensors::serialize(views, None).unwrap();
        let e = StateDict::parse_safetensors(&bytes, Path::new("r.safetensors")).unwrap_err();
        assert!(e.to_string().contains("fc.index"), "{e}");
    }
}
