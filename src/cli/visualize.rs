//! `deepnet visualize filters|activations`: what the layers learned, as PNG grids.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use deepnet::inspect::{visualize_activations, visualize_filters};

use super::device::DeviceArg;
use deepnet::Result;

/// Arguments of `deepnet visualize`.
#[derive(Args, Debug)]
pub struct VisualizeArgs {
    #[command(subcommand)]
    what: What,
    /// Compute device.
    #[arg(
        long,
        default_value = "cpu",
        value_name = "cpu|wgpu|cuda[:N]",
        global = true
    )]
    device: DeviceArg,
}

#[derive(Subcommand, Debug)]
enum What {
    /// The first convolution's filters as a grid (default: report/filters.png of the run).
    Filters {
        /// A run directory or a checkpoint.safetensors file.
        checkpoint: PathBuf,
        /// The PNG to write.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The feature maps an image produces at each stage, one grid per stage (default: the
    /// run's report/).
    Activations {
        /// A run directory or a checkpoint.safetensors file.
        checkpoint: PathBuf,
        /// The image (any size or colour; converted as `predict` does).
        image: PathBuf,
        /// The directory to write into.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(a: VisualizeArgs) -> Result<()> {
    let device = a.device.device()?;
    match a.what {
        What::Filters { checkpoint, out } => {
            let file = visualize_filters(&checkpoint, out.as_deref(), &device)?;
            println!("{}", file.display());
        }
        What::Activations {
            checkpoint,
            image,
            out,
        } => {
            for file in visualize_activations(&checkpoint, &image, out.as_deref(), &device)? {
                println!("{}", file.display());
            }
        }
    }
    Ok(())
}
