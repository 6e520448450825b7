//! `deepnet generate RUN --prompt TEXT --length N --temperature T --seed S`: text from a
//! `deepnet lm-train` run, reproducible with the seed.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::char_lm::Generator;
use deepnet::Result;

use super::device::DeviceArg;

/// Options of `deepnet generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Run directory (or checkpoint file) of `deepnet lm-train`.
    run: PathBuf,
    /// Text to continue (at most 64 KiB; may be empty).
    #[arg(long, default_value = "")]
    prompt: String,
    /// Characters to write.
    #[arg(long, default_value_t = 300)]
    length: usize,
    /// Softmax temperature: below 1 safer, above 1 wilder.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet generate`.
pub fn run(a: GenerateArgs) -> Result<()> {
    let device = a.device.device()?;
    let generator = Generator::load(&a.run, &device)?;
    println!(
        "{}",
        generator.generate(&a.prompt, a.length, a.temperature, a.seed)?
    );
    Ok(())
}
