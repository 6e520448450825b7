//! `deepnet translate-train`: grapheme to phoneme on CMUdict, a bidirectional LSTM/GRU encoder
//! over letters and an attention decoder over phonemes, scored by word and phoneme error rate
//! with greedy decoding and beam search.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::text::cmudict::CMUDICT_FILE;
use deepnet::models::Seq2SeqConfig;
use deepnet::nn::AttentionKind;
use deepnet::tasks::g2p::{resume_run, start_run, G2pData, G2pOutcome, G2pRequest};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::langid_train::CellArg;
use super::progress::{pass_lines, ProgressBars};

/// `--attention`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AttentionArg {
    /// Bahdanau's additive attention.
    Additive,
    /// Luong's multiplicative attention with input feeding.
    Multiplicative,
    /// No attention: the encoder's final states start the decoder.
    None,
}

impl From<AttentionArg> for AttentionKind {
    fn from(a: AttentionArg) -> AttentionKind {
        match a {
            AttentionArg::Additive => AttentionKind::Additive,
            AttentionArg::Multiplicative => AttentionKind::Multiplicative,
            AttentionArg::None => AttentionKind::None,
        }
    }
}

/// Options of `deepnet translate-train`.
#[derive(Args, Debug)]
pub struct TranslateTrainArgs {
    /// A pronouncing dictionary in CMUdict format (`word PH1 PH2 ...`, variants as
    /// `word(2)`); scripts/install_cmudict.sh installs CMUdict here.
    #[arg(long, value_name = "FILE", default_value = CMUDICT_FILE)]
    data: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/g2p")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Recurrent cell of encoder and decoder.
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellArg,
    /// The decoder's attention.
    #[arg(long, value_enum, default_value = "additive")]
    attention: AttentionArg,
    /// Features of a letter's or phoneme's embedding.
    #[arg(long, default_value_t = 64)]
    embed_size: usize,
    /// Features of each encoder direction's state.
    #[arg(long, default_value_t = 128)]
    encoder_hidden: usize,
    /// Stacked bidirectional encoder layers.
    #[arg(long, default_value_t = 1)]
    encoder_layers: usize,
    /// Features of the decoder state.
    #[arg(long, default_value_t = 256)]
    decoder_hidden: usize,
    /// Features of the additive attention's hidden layer.
    #[arg(long, default_value_t = 128)]
    attention_size: usize,
    /// Fraction of the words held out for validation.
    #[arg(long, default_value_t = 0.05)]
    valid_fraction: f64,
    /// Fraction of the words held out for the test report.
    #[arg(long, default_value_t = 0.05)]
    test_fraction: f64,
    /// Beam width of the report (1: greedy only).
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Length normalisation of beam search: rank by log p / length^alpha.
    #[arg(long, default_value_t = 1.0)]
    length_alpha: f32,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// (word, pronunciation) pairs per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate (cosine schedule to 0 over the run).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f64,
    /// Seed of the split, initialization and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Pairs per validation batch.
    #[arg(long)]
    val_batch_size: Option<usize>,
    /// Also checkpoint every N batches.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet translate-train`.
pub fn run(a: TranslateTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let mut progress = pass_lines("decoding");
    let outcome = if let Some(dir) = &a.resume {
        eprintln!("resuming {}", dir.display());
        resume_run(
            dir,
            a.epochs,
            &device,
            &mut ProgressBars::new(),
            &mut progress,
        )?
    } else {
        let req = G2pRequest {
            model: Seq2SeqConfig {
                source_vocab: 0,
                target_vocab: 0,
                embed_size: a.embed_size,
                encoder_hidden: a.encoder_hidden,
                encoder_layers: a.encoder_layers,
                decoder_hidden: a.decoder_hidden,
                attention_size: a.attention_size,
                cell: a.cell.into(),
                attention: a.attention.into(),
            },
            data: G2pData {
                file: a.data.clone(),
                split_seed: a.seed,
                valid_fraction: a.valid_fraction,
                test_fraction: a.test_fraction,
            },
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                batch_size: a.batch_size,
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                clip_norm: Some(a.clip_norm),
                seed: a.seed,
                val_batch_size: a.val_batch_size,
                checkpoint_every: a.checkpoint_every,
                ..TrainConfig::default()
            },
            beam_width: a.beam,
            length_alpha: a.length_alpha,
            out: a.out.clone(),
        };
        eprintln!(
            "training grapheme to phoneme on {}, run directory {}",
            a.data.display(),
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new(), &mut progress)?
    };
    print_outcome(&outcome);
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Prints the test report of a run.
fn print_outcome(o: &G2pOutcome) {
    let r = &o.report;
    let [tr, va, te] = r.words;
    println!(
        "words: {tr} train ({} pronunciations), {va} validation, {te} test; stress stripped, {} punctuation lines dropped",
        o.pairs[0], o.run.skipped.punctuation_lines
    );
    println!(
        "attention: {}   {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        r.attention.name(),
        "decoding",
        "test WER",
        "test PER",
        "valid WER",
        "valid PER",
        "seconds"
    );
    for d in &r.decodings {
        println!(
            "                       {:<8} {:>9} {:>9} {:>9} {:>9} {:>9.1}",
            d.decoding,
            pct(d.test_wer),
            pct(d.test_per),
            pct(d.valid_wer),
            pct(d.valid_per),
            d.test_seconds
        );
    }
    println!("test words, greedy:");
    for e in r.examples.iter().take(8) {
        let mark = if e.truth.contains(&e.output) {
            "ok "
        } else {
            "ERR"
        };
        println!(
            "  {mark} {:<16} {:<28} truth: {}",
            e.word,
            e.output,
            e.truth.join(" | ")
        );
    }
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    let attention_png = if r.attention == AttentionKind::None {
        String::new()
    } else {
        format!(", {d}/report/attention.png")
    };
    println!("  {d}/report/g2p_test.json, {d}/report/training_curve.png{attention_png}");
    println!("  deepnet translate {d} photograph knight --beam 5");
}
