//! `deepnet forecast RUN FRAME...`: the next 10 frames after the last 10 of the given 64x64
//! grey frame PNGs, from a `deepnet forecast-train` run, written as PNGs and one strip.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::forecast::{read_frame_png, Predictor};
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Options of `deepnet forecast`.
#[derive(Args, Debug)]
pub struct ForecastArgs {
    /// Run directory (or checkpoint file) of `deepnet forecast-train`.
    run: PathBuf,
    /// Frames in order: 64x64 grey PNG files, at least 10 (the last 10 are read).
    #[arg(required = true)]
    frames: Vec<PathBuf>,
    /// Directory for the predicted frames (`next-01.png`...) and `strip.png`.
    #[arg(long, default_value = "forecast")]
    out: PathBuf,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet forecast`.
pub fn run(a: ForecastArgs) -> Result<()> {
    let device = a.device.device()?;
    let predictor = Predictor::load(&a.run, &device)?;
    let frames = a
        .frames
        .iter()
        .map(|p| read_frame_png(p))
        .collect::<Result<Vec<_>>>()?;
    let next = predictor.forecast(&frames)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let side = deepnet::data::moving::FRAME_SIDE as u32;
    for (t, f) in next.iter().enumerate() {
        let path = a.out.join(format!("next-{:02}.png", t + 1));
        image::GrayImage::from_raw(side, side, f.clone())
            .expect("64x64 pixels")
            .save(&path)
            .map_err(|e| Error::bad_data(&path, format!("cannot write PNG: {e}")))?;
    }
    let strip = a.out.join("strip.png");
    let all: Vec<u8> = frames
        .iter()
        .chain(next.iter())
        .flatten()
        .copied()
        .collect();
    deepnet::data::moving::Sequence {
        frames: all,
        items: [0, 0],
        positions: Vec::new(),
    }
    .write_strip(&strip)?;
    println!(
        "{} frames read (the last 10 used), {} predicted: {}/next-01.png .. next-{:02}.png, {}",
        frames.len(),
        next.len(),
        a.out.display(),
        next.len(),
        strip.display()
    );
    Ok(())
}
