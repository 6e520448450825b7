//! `deepnet infer --model NAME --weights FILE --input X.npy --output Y.npy`: raw logits of a
//! zoo model with torchvision weights, for float32 N×C×H×W input.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;
use deepnet::io::npy::{encode_npy, read_npy, NpyArray};
use deepnet::models::vision::{visit_model_with, ImageClassifier, ModelSpec, ZooVisitor};
use deepnet::tasks::classification::options_for_dict;
use deepnet::weights::torchvision::load_state_dict;
use deepnet::weights::StateDict;
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Arguments of `deepnet infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Model name (see `deepnet summary --list`).
    #[arg(long)]
    model: String,
    /// Weights under torchvision's names: `.pth` (torch.save) or `.safetensors`.
    #[arg(long)]
    weights: PathBuf,
    /// Input: float32 array N×C×H×W (`.npy`).
    #[arg(long)]
    input: PathBuf,
    /// Output: the logits, float32 N×classes (`.npy`).
    #[arg(long)]
    output: PathBuf,
    /// Classes of the output layer (default: the model's, 1000 for ImageNet models).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// GoogLeNet: torchvision's transform_input (its ImageNet weights need it on).
    #[arg(long)]
    transform_input: bool,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

struct Infer {
    dict: StateDict,
    input: NpyArray,
    batch: usize,
    device: Device,
}

impl ZooVisitor for Infer {
    type Output = Result<NpyArray>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<NpyArray> {
        let [n, c, h, w]: [usize; 4] = self.input.shape[..]
            .try_into()
            .map_err(|_| Error::invalid("--input", "expected N×C×H×W"))?;
        deepnet::models::vision::check_input(spec, [c, h, w])?;
        let namer = model.clone();
        let model = load_state_dict(model, &|p| namer.torch_key(p), &self.dict)?;
        let per_image = c * h * w;
        let device = self.device;
        let mut out = Vec::new();
        let mut classes = 0;
        for start in (0..n).step_by(self.batch.max(1)) {
            let b = self.batch.max(1).min(n - start);
            let chunk = self.input.data[start * per_image..(start + b) * per_image].to_vec();
            let x = Tensor::<4>::from_data(TensorData::new(chunk, [b, c, h, w]), &device);
            let logits = model.forward(x); // [b, classes]
            classes = logits.dims()[1];
            out.extend(
                logits
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::invalid("logits", format!("{e:?}")))?,
            );
        }
        Ok(NpyArray {
            shape: vec![n, classes],
            data: out,
        })
    }
}

/// Runs the command.
pub fn run(a: InferArgs) -> Result<()> {
    let spec = deepnet::models::vision::spec(&a.model)?;
    let input = read_npy(&a.input)?;
    let shape = &input.shape;
    let (min_side, max_side) = deepnet::models::vision::input_sides(spec.name);
    let fits = |s: usize| s >= min_side && max_side.is_none_or(|m| s <= m);
    match shape[..] {
        [n, c, h, w] if n > 0 && c == spec.input[0] && fits(h) && fits(w) => {}
        [_, c, _, _] if c != spec.input[0] => {
            return Err(Error::invalid(
                "--input",
                format!(
                    "{}: shape {shape:?} has {c} channels; {} takes {}",
                    a.input.display(),
                    spec.name,
                    spec.input[0]
                ),
            ))
        }
        [_, _, _, _] => {
            return Err(Error::invalid(
                "--input",
                format!(
                    "{}: shape {shape:?}; {} needs at least one image with sides {}",
                    a.input.display(),
                    spec.name,
                    match max_side {
                        Some(m) => format!("between {min_side} and {m}"),
                        None => format!("of at least {min_side}"),
                    }
                ),
            ))
        }
        _ => {
            return Err(Error::invalid(
                "--input",
                format!(
                    "{}: shape {shape:?} is not N×C×H×W (one image: add a leading 1)",
                    a.input.display()
                ),
            ))
        }
    }
    let dict = StateDict::read(&a.weights)?;
    let classes = a.num_classes.unwrap_or(spec.classes);
    let options = options_for_dict(&a.model, &dict, a.transform_input);
    let device = a.device.device()?;
    let logits = visit_model_with(
        &a.model,
        classes,
        options,
        &device,
        Infer {
            dict,
            input,
            batch: a.batch_size,
            device: device.clone(),
        },
    )??;
    let bytes = encode_npy(&logits);
    deepnet::io::write_atomic(&a.output, &bytes)?;
    eprintln!(
        "wrote {}: logits {}x{}",
        a.output.display(),
        logits.shape[0],
        logits.shape[1]
    );
    Ok(())
}
