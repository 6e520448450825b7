//! `deepnet caption RUN IMAGE...`: the caption of each 64x64 grey scene PNG from a
//! `deepnet caption-train` run, optionally with a picture of each word's attention.

use std::path::PathBuf;

use clap::Args;
use deepnet::nn::AttentionKind;
use deepnet::tasks::caption::{attention_over_scene, read_scene_png, Captioner};
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Options of `deepnet caption`.
#[derive(Args, Debug)]
pub struct CaptionArgs {
    /// Run directory (or checkpoint file) of `deepnet caption-train`.
    run: PathBuf,
    /// Scenes: 64x64 grey PNG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Also draw each word's attention over the scene into DIR/<image>-attention.png.
    #[arg(long, value_name = "DIR")]
    attention_dir: Option<PathBuf>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet caption`.
pub fn run(a: CaptionArgs) -> Result<()> {
    let device = a.device.device()?;
    let captioner = Captioner::load(&a.run, &device)?;
    if a.attention_dir.is_some() && captioner.run.decoder.attention == AttentionKind::None {
        return Err(Error::invalid(
            "attention_dir",
            "this run's decoder has no attention to draw",
        ));
    }
    for image in &a.images {
        let pixels = read_scene_png(image)?;
        let h = captioner.caption(&pixels)?;
        println!("{}: {}", image.display(), Captioner::words(&h));
        if let Some(dir) = &a.attention_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let stem = image
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scene".into());
            let png = dir.join(format!("{stem}-attention.png"));
            attention_over_scene(&pixels, &h, captioner.run.grid, &png)?;
            eprintln!("attention drawn into {}", png.display());
        }
    }
    Ok(())
}
