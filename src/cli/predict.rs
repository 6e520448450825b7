//! `deepnet predict CHECKPOINT IMAGE...`.

use std::path::PathBuf;

use clap::Args;
use deepnet::train::run::predict;
use deepnet::Result;

use super::device::DeviceArg;

/// Arguments of `deepnet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run directory or a checkpoint.safetensors file.
    checkpoint: PathBuf,
    /// Image files (PNG, JPEG, ...); colour and other sizes are converted.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, short = 'k', default_value_t = 3)]
    top: usize,
    /// Refuse the checkpoint unless it holds this model.
    #[arg(long)]
    model: Option<String>,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

/// Runs `deepnet predict`.
pub fn run(a: PredictArgs) -> Result<()> {
    let device = a.device.device()?;
    let preds = predict(&a.checkpoint, &a.images, a.top, a.model.as_deref(), &device)?;
    for p in preds {
        println!("{}", p.image.display());
        for (name, prob) in p.top {
            println!("  {:6.2}%  {name}", prob * 100.0);
        }
    }
    Ok(())
}
