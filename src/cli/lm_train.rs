//! `deepnet lm-train`: a character-level LSTM/GRU language model on the fortunes of one
//! language, trained with truncated BPTT, with an interpolated Kneser-Ney 5-gram baseline on
//! the same split.

use std::path::PathBuf;

use clap::Args;
use deepnet::data::text::{CorpusSource, FORTUNES_DIR};
use deepnet::models::CharLmConfig;
use deepnet::tasks::char_lm::{resume_run, start_run, LmData, LmOutcome, LmRequest};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::langid_train::CellArg;
use super::progress::ProgressBars;

/// Options of `deepnet lm-train`.
#[derive(Args, Debug)]
pub struct LmTrainArgs {
    /// Where Debian's fortune packages installed their files.
    #[arg(long, value_name = "DIR", default_value = FORTUNES_DIR, conflicts_with = "data")]
    fortunes: PathBuf,
    /// Texts instead: a folder with one sub-folder of UTF-8 text files per language.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Language (code) whose text is modelled.
    #[arg(long, default_value = "en")]
    language: String,
    /// Run directory.
    #[arg(long, default_value = "runs/char-lm")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellArg,
    /// Features of a character's embedding.
    #[arg(long, default_value_t = 64)]
    embed_size: usize,
    /// Hidden features.
    #[arg(long, default_value_t = 256)]
    hidden_size: usize,
    /// Stacked layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Dropout between the recurrent layers.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Contiguous streams of text, one per batch row.
    #[arg(long, default_value_t = 32)]
    streams: usize,
    /// Characters per truncated-BPTT window.
    #[arg(long, default_value_t = 100)]
    bptt: usize,
    /// Characters seen fewer times in the training text are unknown.
    #[arg(long, default_value_t = 5)]
    min_char_count: usize,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Adam's learning rate (cosine schedule to 0 over the epochs).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f64,
    /// Seed of the split and the initialization.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet lm-train`.
pub fn run(a: LmTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(dir, a.epochs, &device, &mut ProgressBars::new())?
    } else {
        let source = match &a.data {
            Some(dir) => CorpusSource::Folder { dir: dir.clone() },
            None => CorpusSource::Fortunes {
                dir: a.fortunes.clone(),
            },
        };
        let req = LmRequest {
            model: CharLmConfig {
                vocab_size: 0,
                embed_size: a.embed_size,
                hidden_size: a.hidden_size,
                num_layers: a.layers,
                cell: a.cell.into(),
                dropout: a.dropout,
            },
            data: LmData {
                source,
                language: a.language.clone(),
                split_seed: a.seed,
                valid_fraction: 0.1,
                test_fraction: 0.1,
                min_char_count: a.min_char_count,
                streams: a.streams,
                bptt: a.bptt,
            },
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                clip_norm: Some(a.clip_norm),
                seed: a.seed,
                ..TrainConfig::default()
            },
            out: a.out.clone(),
        };
        eprintln!(
            "training a character language model on the {} text, run directory {}",
            a.language,
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new())?
    };
    print_outcome(&outcome);
    Ok(())
}

fn print_outcome(o: &LmOutcome) {
    let r = &o.report;
    println!(
        "text: {} characters train, {} validation, {} test; vocabulary {} ids ({} unknown characters in test)",
        r.chars[0], r.chars[1], r.chars[2], r.vocab_size, r.test_unknown
    );
    println!(
        "bits per character     validation   test\n  {:<20} {:>10.4} {:>7.4}\n  {:<20} {:>10.4} {:>7.4}",
        format!("{:?} {}x{}", o.run.model.cell, o.run.model.num_layers, o.run.model.hidden_size),
        r.rnn_valid_bpc,
        r.rnn_test_bpc,
        format!("Kneser-Ney {}-gram", r.kn_order),
        r.kn_valid_bpc,
        r.kn_test_bpc
    );
    println!(
        "sample (prompt {:?}, temperature {}, seed {}):\n{}",
        r.sample.prompt, r.sample.temperature, r.sample.seed, r.sample.text
    );
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/lm_test.json, {d}/report/sample.txt, {d}/report/training_curve.png");
    println!("  deepnet generate {d} --prompt \"The \" --length 300 --temperature 0.8 --seed 1");
}
