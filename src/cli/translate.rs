//! `deepnet translate RUN WORD...`: the pronunciation of each word (ARPAbet, stress stripped)
//! from a `deepnet translate-train` run, by greedy decoding or beam search, and optionally a
//! picture of where the decoder looked.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::g2p::Translator;
use deepnet::Result;

use super::device::DeviceArg;

/// Options of `deepnet translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Run directory (or checkpoint file) of `deepnet translate-train`.
    run: PathBuf,
    /// Words to pronounce (letters and apostrophes).
    #[arg(required = true)]
    words: Vec<String>,
    /// Beam width (1: greedy decoding).
    #[arg(long, default_value_t = 1)]
    beam: usize,
    /// Also draw the attention over each word's letters into this PNG.
    #[arg(long, value_name = "PNG")]
    heatmap: Option<PathBuf>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet translate`.
pub fn run(a: TranslateArgs) -> Result<()> {
    let device = a.device.device()?;
    let translator = Translator::load(&a.run, &device)?;
    for t in translator.translate(&a.words, a.beam)? {
        let cut = if t.finished {
            ""
        } else {
            "  (cut at the length limit)"
        };
        println!(
            "{:<20} {}   (log p {:.3}){cut}",
            t.word,
            t.phonemes.join(" "),
            t.log_prob
        );
    }
    if let Some(png) = &a.heatmap {
        translator.attention_png(&a.words, a.beam, png)?;
        eprintln!("attention drawn into {}", png.display());
    }
    Ok(())
}
