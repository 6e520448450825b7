//! `deepnet export RUN --to FILE.pth|FILE.safetensors` (or `--model NAME --weights FILE`):
//! weights under torchvision's names, back to PyTorch.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::classification::{export_run, export_weights};
use deepnet::{Error, Result};

/// Arguments of `deepnet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory or checkpoint file (omit with --model/--weights).
    run: Option<PathBuf>,
    /// Output file: `.pth` (torch.save format) or `.safetensors`.
    #[arg(long)]
    to: PathBuf,
    /// Instead of a run: the zoo model of --weights.
    #[arg(long, requires = "weights", conflicts_with = "run")]
    model: Option<String>,
    /// Instead of a run: torchvision weights (.pth or .safetensors) of --model.
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    /// With --model: classes of the output layer (default: the model's).
    #[arg(long, requires = "model")]
    num_classes: Option<usize>,
}

/// Runs `deepnet export`.
pub fn run(a: ExportArgs) -> Result<()> {
    let n = match (&a.run, &a.model, &a.weights) {
        (Some(run), _, _) => export_run(run, &a.to)?,
        (None, Some(model), Some(weights)) => export_weights(model, a.num_classes, weights, &a.to)?,
        _ => {
            return Err(Error::invalid(
                "arguments",
                "give a run directory, or --model NAME --weights FILE",
            ))
        }
    };
    println!("{}: {n} tensors under torchvision's names", a.to.display());
    Ok(())
}
