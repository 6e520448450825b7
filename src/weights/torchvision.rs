//! torchvision's parameter names for deepnet's CNNs, and filling a model's parameters and
//! buffers by those names: from a state dict (a `.safetensors` file saved from torchvision), or
//! from a deterministic rule (the parity fixtures, see [`rule_tensor`]).
//!
//! deepnet's field paths equal torchvision's keys except where burn's layout forces a
//! difference; [`ImageClassifier::torch_key`](crate::models::vision::ImageClassifier::torch_key) maps
//! one to the other: batch norm `gamma`/`beta` are torchvision's `weight`/`bias`, positional
//! `nn.Sequential` indices differ (AlexNet, VGG), and a shortcut's `downsample.conv` is
//! `downsample.0`. Linear weights are stored `[in, out]` in burn and `[out, in]` in PyTorch:
//! they are transposed here, in this one place.

use std::collections::BTreeSet;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use super::StateDict;
use crate::error::{Error, Result};

/// The generic part of the burn-path → torchvision-key mapping: batch norm's `gamma`/`beta`,
/// the shortcut projection `downsample.{conv,bn}`, GoogLeNet's pool-branch `branch4`.
pub fn default_torch_key(path: &str) -> String {
    let mut key = path
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
        .replace(".branch4.conv.", ".branch4.1.conv.")
        .replace(".branch4.bn.", ".branch4.1.bn.");
    if let Some(stem) = key.strip_suffix(".gamma") {
        key = format!("{stem}.weight");
    } else if let Some(stem) = key.strip_suffix(".beta") {
        key = format!("{stem}.bias");
    }
    key
}

/// Rewrites `prefix.{i}.rest` to `prefix.{map[i]}.rest` (positional `nn.Sequential` indices).
pub fn remap_index(key: &str, prefix: &str, map: &dyn Fn(usize) -> Option<usize>) -> String {
    let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
        return key.to_string();
    };
    let (idx, tail) = rest.split_once('.').unwrap_or((rest, ""));
    match idx.parse::<usize>().ok().and_then(map) {
        Some(i) if tail.is_empty() => format!("{prefix}.{i}"),
        Some(i) => format!("{prefix}.{i}.{tail}"),
        None => key.to_string(),
    }
}

/// Where the values come from: `torch_shape` is the tensor's shape in PyTorch's layout.
pub trait TensorSource {
    /// The values of `key` (row-major in PyTorch's layout), or an error naming it.
    fn values(&mut self, key: &str, torch_shape: &[usize]) -> Result<Vec<f32>>;
}

impl TensorSource for StateDict {
    fn values(&mut self, key: &str, torch_shape: &[usize]) -> Result<Vec<f32>> {
        match self.tensors.get(key) {
            None => Err(Error::bad_data(
                &self.source,
                format!("tensor '{key}' (shape {torch_shape:?}) is missing"),
            )),
            Some(e) if e.shape != torch_shape => Err(Error::bad_data(
                &self.source,
                format!(
                    "tensor '{key}' has shape {:?}, the model expects {torch_shape:?}",
                    e.shape
                ),
            )),
            Some(e) => Ok(e.data.clone()),
        }
    }
}

/// The deterministic parameter rule of the parity fixtures (the same formula is in
/// scripts/make_vision_fixtures.py): with `h` the FNV-1a hash of `key` and `i` the row-major
/// index in PyTorch's layout, `z = splitmix64(h·0x9E3779B97F4A7C15 + i·0xBF58476D1CE4E5B9)`
/// (wrapping) and `b_i = (z >> 11) / 2⁵³ · 2 − 1`, uniform in [-1, 1) (f64):
///
/// - conv/linear weights: `2 b_i / √fan_in`; 1-D `weight` (batch norm): `0.8 + 0.1 b_i`;
/// - `bias`, `running_mean`: `0.1 b_i`; `running_var`: `1 + 0.25 (b_i + 1)`.
pub struct RuleSource;

/// FNV-1a, 32 bits.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    })
}

/// The values [`RuleSource`] gives `key` with `torch_shape`.
pub fn rule_tensor(key: &str, torch_shape: &[usize]) -> Vec<f32> {
    let n: usize = torch_shape.iter().product();
    let h = fnv1a(key) as u64;
    let last = key.rsplit('.').next().unwrap_or(key);
    let fan_in = n / torch_shape.first().copied().unwrap_or(1).max(1);
    (0..n)
        .map(|i| {
            let mut z = h
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z ^= z >> 30;
            z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^= z >> 27;
            z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let b = (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let v = match last {
                "weight" if torch_shape.len() >= 2 => 2.0 * b / (fan_in as f64).sqrt(),
                "weight" => 0.8 + 0.1 * b,
                "running_var" => 1.0 + 0.25 * (b + 1.0),
                _ => 0.1 * b,
            };
            v as f32
        })
        .collect()
}

impl TensorSource for RuleSource {
    fn values(&mut self, key: &str, torch_shape: &[usize]) -> Result<Vec<f32>> {
        Ok(rule_tensor(key, torch_shape))
    }
}

struct Filler<'a> {
    path: Vec<String>,
    /// Module paths whose parameters keep their values.
    keep: &'a [String],
    rename: &'a dyn Fn(&str) -> String,
    source: &'a mut dyn TensorSource,
    used: BTreeSet<String>,
    error: Option<Error>,
}

impl ModuleMapper for Filler<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let path = self.path.join(".");
        if self
            .keep
            .iter()
            .any(|k| path == *k || path.starts_with(&format!("{k}.")))
        {
            return param;
        }
        let key = (self.rename)(&path);
        let burn_shape = param.lazy_shape().dims::<D>();
        // Linear weights: [in, out] here, [out, in] in PyTorch.
        let transpose = D == 2;
        let mut torch_shape = burn_shape.to_vec();
        if transpose {
            torch_shape.reverse();
        }
        let values = match self.source.values(&key, &torch_shape) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(e);
                return param;
            }
        };
        self.used.insert(key);
        let values = if transpose {
            let (rows, cols) = (torch_shape[0], torch_shape[1]);
            let mut t = vec![0f32; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
            t
        } else {
            values
        };
        param.map(|old| {
            let device = old.device();
            let t = Tensor::<D>::from_data(TensorData::new(values, burn_shape), &device);
            if old.is_require_grad() {
                t.require_grad()
            } else {
                t
            }
        })
    }
}

/// Replaces every parameter and batch-norm buffer of `model` by `source`'s tensor of the same
/// torchvision key (`rename` maps a burn path to it). Returns the model and the keys it used.
pub fn fill<M: Module>(
    model: M,
    rename: &dyn Fn(&str) -> String,
    source: &mut dyn TensorSource,
) -> Result<(M, BTreeSet<String>)> {
    fill_except(model, rename, source, &[])
}

/// [`fill`], leaving the parameters under the module paths `keep` as they are.
pub fn fill_except<M: Module>(
    model: M,
    rename: &dyn Fn(&str) -> String,
    source: &mut dyn TensorSource,
    keep: &[String],
) -> Result<(M, BTreeSet<String>)> {
    let mut filler = Filler {
        keep,
        path: Vec::new(),
        rename,
        source,
        used: BTreeSet::new(),
        error: None,
    };
    let model = model.map(&mut filler);
    match filler.error {
        Some(e) => Err(e),
        None => Ok((model, filler.used)),
    }
}

/// Loads a torchvision state dict into `model`: every parameter and buffer by name, and an error
/// naming the key for a missing or mis-shaped tensor or one the model does not have
/// (`num_batches_tracked` counters are ignored).
pub fn load_state_dict<M: Module>(
    model: M,
    rename: &dyn Fn(&str) -> String,
    dict: &StateDict,
) -> Result<M> {
    let mut source = dict.clone();
    let (model, used) = fill(model, rename, &mut source)?;
    let counters = dict
        .tensors
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .map(String::as_str);
    dict.check_no_unexpected(used.iter().map(String::as_str).chain(counters))?;
    Ok(model)
}

/// Loads a torchvision state dict into `model` except the parameters under the module paths
/// `head` (burn paths, e.g. `fc`), which keep their values: a pretrained backbone under a new
/// classifier head. The dict's tensors for the head are ignored whatever their shapes (a
/// 1000-class ImageNet head under a 5-class model); every other key must fit, as in
/// [`load_state_dict`].
pub fn load_backbone<M: Module>(
    model: M,
    rename: &dyn Fn(&str) -> String,
    dict: &StateDict,
    head: &[String],
) -> Result<M> {
    let head_keys: Vec<String> = crate::weights::paths::param_entries(&model)
        .iter()
        .filter(|e| {
            head.iter()
                .any(|k| e.path == *k || e.path.starts_with(&format!("{k}.")))
        })
        .map(|e| rename(&e.path))
        .collect();
    let mut source = dict.clone();
    let (model, used) = fill_except(model, rename, &mut source, head)?;
    let ignored = dict
        .tensors
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked") || head_keys.iter().any(|h| h == *k));
    dict.check_no_unexpected(
        used.iter()
            .map(String::as_str)
            .chain(ignored.map(String::as_str)),
    )?;
    Ok(model)
}

/// The parameters and batch-norm buffers of `model` under their torchvision keys (`rename`
/// maps a burn path to one), Linear weights transposed to PyTorch's `[out, in]`: what
/// [`load_state_dict`] reads back, and what `torch.load_state_dict` accepts after
/// `safetensors.torch.load_file` (with `strict=False` for the `num_batches_tracked` counters).
pub fn export_state_dict<M: Module>(model: &M, rename: &dyn Fn(&str) -> String) -> StateDict {
    struct Export<'a> {
        path: Vec<String>,
        rename: &'a dyn Fn(&str) -> String,
        dict: StateDict,
    }
    impl burn::module::ModuleVisitor for Export<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let key = (self.rename)(&self.path.join("."));
            let t = param.val();
            if D == 2 {
                let device = t.device();
                let t2: Tensor<2> = Tensor::from_data(t.into_data(), &device);
                self.dict.insert(key, t2.transpose());
            } else {
                self.dict.insert(key, t);
            }
        }
    }
    let mut e = Export {
        path: Vec::new(),
        rename,
        dict: StateDict::new("model"),
    };
    model.visit(&mut e);
    e.dict
}
