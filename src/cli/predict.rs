//! `deepnet predict CHECKPOINT IMAGE...`.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::classification::{predict, predict_imagenet};
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Arguments of `deepnet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run directory or a checkpoint.safetensors file, then image files (PNG, JPEG, ...;
    /// colour and other sizes are converted). With --weights: image files only.
    #[arg(required = true, value_name = "CHECKPOINT|IMAGE")]
    paths: Vec<PathBuf>,
    /// torchvision weights (.pth or .safetensors) for the zoo model named by --model; the
    /// images then get ImageNet's transform (shorter side 256, centre crop 224, mean/std).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Classes of the model with --weights (default: the model's, 1000 for ImageNet models).
    #[arg(long)]
    num_classes: Option<usize>,
    /// How many classes to show per image (default 3; with --weights 5, ImageNet's top-5).
    #[arg(long, short = 'k')]
    top: Option<usize>,
    /// The model: with --weights, which zoo model to build; otherwise the checkpoint is refused
    /// unless it holds this model.
    #[arg(long)]
    model: Option<String>,
    /// GoogLeNet with --weights: torchvision's transform_input (its ImageNet weights need it on).
    #[arg(long)]
    transform_input: bool,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet predict`.
pub fn run(a: PredictArgs) -> Result<()> {
    let device = a.device.device()?;
    let preds = match (&a.weights, &a.model) {
        (Some(weights), Some(model)) => predict_imagenet(
            model,
            weights,
            &a.paths,
            a.top.unwrap_or(5),
            a.num_classes,
            a.transform_input,
            &device,
        )?,
        (Some(_), None) => {
            return Err(Error::invalid(
                "--weights",
                "needs --model NAME: which architecture the weights are for",
            ))
        }
        (None, _) => {
            let (checkpoint, images) = a.paths.split_first().expect("clap requires one path");
            predict(
                checkpoint,
                images,
                a.top.unwrap_or(3),
                a.model.as_deref(),
                &device,
            )?
        }
    };
    for p in preds {
        println!("{}", p.image.display());
        for (name, prob) in p.top {
            println!("  {:6.2}%  {name}", prob * 100.0);
        }
    }
    Ok(())
}
