//! `deepnet langid-train`: a character-level bidirectional LSTM/GRU that tells languages apart,
//! trained on Debian's fortunes in nine languages (or a folder of your own texts), with a
//! character n-gram naive Bayes baseline scored on the same test texts.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::text::{CorpusSource, FORTUNES_DIR};
use deepnet::models::{CellType, CharClassifierConfig};
use deepnet::tasks::langid::{
    resume_run, start_run, LangIdData, LangIdOutcome, LangIdRequest, BUCKETS,
};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::ProgressBars;

/// `--cell` of the text commands.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum CellArg {
    Lstm,
    Gru,
}

impl From<CellArg> for CellType {
    fn from(c: CellArg) -> CellType {
        match c {
            CellArg::Lstm => CellType::Lstm,
            CellArg::Gru => CellType::Gru,
        }
    }
}

/// Options of `deepnet langid-train`.
#[derive(Args, Debug)]
pub struct LangIdTrainArgs {
    /// Texts: a folder with one sub-folder of UTF-8 text files per language (entries separated
    /// by lines holding only `%`, else by blank lines) [default: Debian's fortunes in nine
    /// languages, /usr/share/games/fortunes, read through the committed manifest].
    #[arg(long, value_name = "DIR", conflicts_with = "fortunes")]
    data: Option<PathBuf>,
    /// Where Debian's fortune packages installed their files (read through the manifest).
    #[arg(long, value_name = "DIR", default_value = FORTUNES_DIR)]
    fortunes: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/langid")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with = "data")]
    resume: Option<PathBuf>,
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellArg,
    /// Features of a character's embedding.
    #[arg(long, default_value_t = 32)]
    embed_size: usize,
    /// Hidden features of each direction.
    #[arg(long, default_value_t = 64)]
    hidden_size: usize,
    /// Stacked bidirectional layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Dropout between the recurrent layers.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Longest training crop, in characters (crops are 1 to this long).
    #[arg(long, default_value_t = 128)]
    max_crop: usize,
    /// Crops per epoch [default: as many as there are training entries].
    #[arg(long)]
    epoch_items: Option<usize>,
    /// Characters of a test entry the report reads.
    #[arg(long, default_value_t = 512)]
    eval_max_len: usize,
    /// Characters seen fewer times in the training texts are unknown.
    #[arg(long, default_value_t = 5)]
    min_char_count: usize,
    /// Fraction of each language's entries held out for validation.
    #[arg(long, default_value_t = 0.1)]
    valid_fraction: f64,
    /// Fraction of each language's entries held out for the test report.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Texts per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate (cosine schedule to 0 over the run).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f64,
    /// Seed of the split, initialization, crops and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Texts per validation batch.
    #[arg(long)]
    val_batch_size: Option<usize>,
    /// Also checkpoint every N batches.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet langid-train`.
pub fn run(a: LangIdTrainArgs) -> Result<()> {
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
        let req = LangIdRequest {
            model: CharClassifierConfig {
                vocab_size: 0,
                num_classes: 0,
                embed_size: a.embed_size,
                hidden_size: a.hidden_size,
                num_layers: a.layers,
                cell: a.cell.into(),
                dropout: a.dropout,
            },
            data: LangIdData {
                source,
                split_seed: a.seed,
                valid_fraction: a.valid_fraction,
                test_fraction: a.test_fraction,
                max_crop: a.max_crop,
                eval_max_len: a.eval_max_len,
                min_char_count: a.min_char_count,
                epoch_items: a.epoch_items,
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
            out: a.out.clone(),
        };
        eprintln!(
            "training a language identifier on {}, run directory {}",
            match &a.data {
                Some(d) => d.display().to_string(),
                None => format!("the fortunes in {}", a.fortunes.display()),
            },
            a.out.display()
        );
        start_run(&req, &device, &mut ProgressBars::new())?
    };
    print_outcome(&outcome);
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Prints the test report of a run.
fn print_outcome(o: &LangIdOutcome) {
    let r = &o.report;
    let [tr, va, te] = o.entries;
    println!("entries: {tr} train, {va} validation, {te} test");
    let s = &o.run.skipped;
    println!(
        "skipped while reading: {} symbolic links, {} binary files, {} undecodable entries, {} duplicates, {} entries under two languages",
        s.symlinks, s.binary_files, s.undecodable_entries, s.duplicate_entries, s.ambiguous_entries
    );
    println!(
        "test entries ({}, cut to {} characters): rnn accuracy {}, macro {} | naive Bayes accuracy {}, macro {}",
        r.entries,
        o.run.data.eval_max_len,
        pct(r.rnn.accuracy),
        pct(r.rnn.macro_accuracy),
        pct(r.naive_bayes.accuracy),
        pct(r.naive_bayes.macro_accuracy)
    );
    println!(
        "{:<8} {:>6}  {:>12} {:>12}  {:>12} {:>12}",
        "length", "texts", "rnn acc", "rnn macro", "NB acc", "NB macro"
    );
    debug_assert_eq!(r.buckets.len(), BUCKETS.len());
    for b in &r.buckets {
        println!(
            "{:<8} {:>6}  {:>12} {:>12}  {:>12} {:>12}",
            b.name,
            b.count,
            pct(b.rnn.accuracy),
            pct(b.rnn.macro_accuracy),
            pct(b.naive_bayes.accuracy),
            pct(b.naive_bayes.macro_accuracy)
        );
    }
    println!("per language (whole test entries): rnn / naive Bayes");
    for (i, l) in r.languages.iter().enumerate() {
        println!(
            "  {:<4} {:<12} {:>8} {:>8}",
            l.code,
            l.name,
            pct(r.rnn.per_language[i]),
            pct(r.naive_bayes.per_language[i])
        );
    }
    println!(
        "naive Bayes: char 1-3-grams, {} n-grams, smoothing {} (chosen on validation, macro {})",
        r.naive_bayes_grams,
        r.naive_bayes_alpha,
        pct(r.naive_bayes_valid_macro)
    );
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/langid_test.json, {d}/report/confusion_matrix.png, {d}/report/accuracy_by_length.png, {d}/report/training_curve.png");
    println!("  deepnet langid {d} \"some text\"");
}
