//! `deepnet langid RUN TEXT...`: the three most likely languages of each text, with their
//! probabilities, from a `deepnet langid-train` run.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::langid::Identifier;
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Options of `deepnet langid`.
#[derive(Args, Debug)]
pub struct LangIdArgs {
    /// Run directory (or checkpoint file) of `deepnet langid-train`.
    run: PathBuf,
    /// Texts to identify (each at most 64 KiB).
    #[arg(required = true)]
    texts: Vec<String>,
    /// Languages shown per text.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet langid`.
pub fn run(a: LangIdArgs) -> Result<()> {
    if a.top == 0 {
        return Err(Error::invalid("top", "must be at least 1"));
    }
    let device = a.device.device()?;
    let id = Identifier::load(&a.run, &device)?;
    for (i, text) in a.texts.iter().enumerate() {
        let ranked = id
            .identify(text)
            .map_err(|e| Error::invalid(format!("text {}", i + 1), e.to_string()))?;
        let shown: String = text.chars().take(60).collect();
        let more = if text.chars().count() > 60 { "..." } else { "" };
        println!("{shown}{more}");
        for (lang, p) in ranked.iter().take(a.top) {
            println!("  {:<4} {:>7.2}%  {}", lang.code, 100.0 * p, lang.name);
        }
    }
    Ok(())
}
