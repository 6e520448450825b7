//! `deepnet caption-train`: image captioning on generated scenes of Fashion-MNIST items, a
//! frozen zoo CNN from a deepnet run as the encoder and an LSTM decoder with soft attention
//! (or, `--attention none`, the Show-and-Tell baseline), scored by BLEU, exact match and the
//! accuracy of the named classes and relations.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::data::DEFAULT_FASHION_MNIST_DIR;
use deepnet::nn::{AttentionDecoderConfig, AttentionKind, SummaryUse};
use deepnet::tasks::caption::{
    resume_run, start_run, CaptionData, CaptionOutcome, CaptionRequest, CaptionScores,
};
use deepnet::train::{OptimizerKind, Schedule, TrainConfig};
use deepnet::Result;

use super::device::DeviceArg;
use super::progress::{pass_lines, ProgressBars};

/// `--attention` of captioning.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AttentionArg {
    /// Soft attention with Bahdanau's additive score (Show, Attend and Tell).
    Additive,
    /// Luong's multiplicative score with input feeding.
    Multiplicative,
    /// No attention: Show and Tell (the image vector is the first input).
    None,
}

/// Options of `deepnet caption-train`.
#[derive(Args, Debug)]
pub struct CaptionTrainArgs {
    /// The encoder: a deepnet run (or checkpoint) of a zoo CNN trained on Fashion-MNIST, e.g.
    /// `deepnet train resnet20 --out runs/fashion-resnet20`.
    #[arg(long, value_name = "RUN", required_unless_present = "resume")]
    encoder: Option<PathBuf>,
    /// Fashion-MNIST directory whose images the scenes are made of.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/caption")]
    out: PathBuf,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// The decoder's attention.
    #[arg(long, value_enum, default_value = "additive")]
    attention: AttentionArg,
    /// Training scenes.
    #[arg(long, default_value_t = 12000)]
    train_scenes: usize,
    /// Validation scenes.
    #[arg(long, default_value_t = 1000)]
    valid_scenes: usize,
    /// Test scenes.
    #[arg(long, default_value_t = 2000)]
    test_scenes: usize,
    /// Seed of the scenes.
    #[arg(long, default_value_t = 1)]
    scene_seed: u64,
    /// Features of a word's embedding.
    #[arg(long, default_value_t = 64)]
    embed_size: usize,
    /// Features of the decoder state.
    #[arg(long, default_value_t = 256)]
    hidden_size: usize,
    /// Features of the additive attention's hidden layer.
    #[arg(long, default_value_t = 128)]
    attention_size: usize,
    /// Number of epochs (in all, when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Scenes per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate (cosine schedule to 0 over the run).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f64,
    /// Seed of the initialization and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet caption-train`.
pub fn run(a: CaptionTrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let mut progress = pass_lines("encoding");
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
        let attention = match a.attention {
            AttentionArg::Additive => AttentionKind::Additive,
            AttentionArg::Multiplicative => AttentionKind::Multiplicative,
            AttentionArg::None => AttentionKind::None,
        };
        let req = CaptionRequest {
            decoder: AttentionDecoderConfig::new(0, 0, 0)
                .with_embed_size(a.embed_size)
                .with_hidden_size(a.hidden_size)
                .with_attention_size(a.attention_size)
                .with_attention(attention)
                .with_summary_use(if attention == AttentionKind::None {
                    // Show and Tell: the image is the input of a step before the first word.
                    SummaryUse::FirstInput
                } else {
                    SummaryUse::InitialState
                }),
            data: CaptionData {
                fashion_mnist: a.data.clone(),
                encoder: a.encoder.clone().expect("clap requires --encoder"),
                scenes: [a.train_scenes, a.valid_scenes, a.test_scenes],
                scene_seed: a.scene_seed,
            },
            train: TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                batch_size: a.batch_size,
                lr: a.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine { min_lr: 0.0 },
                clip_norm: Some(a.clip_norm),
                seed: a.seed,
                ..TrainConfig::default()
            },
            out: a.out.clone(),
        };
        eprintln!("training a captioner, run directory {}", a.out.display());
        start_run(&req, &device, &mut ProgressBars::new(), &mut progress)?
    };
    print_outcome(&outcome);
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn row(s: &CaptionScores) {
    let b = &s.bleu.bleu;
    println!(
        "  {:<30} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>9} {:>9} {:>9}",
        s.method,
        100.0 * b[0],
        100.0 * b[1],
        100.0 * b[2],
        100.0 * b[3],
        pct(s.exact_match),
        pct(s.class_accuracy),
        pct(s.relation_accuracy)
    );
}

fn print_outcome(o: &CaptionOutcome) {
    let r = &o.report;
    let [tr, va, te] = r.scenes;
    println!(
        "scenes: {tr} train, {va} validation, {te} test; encoder {} ({}), annotation grid {}x{}",
        o.run.encoder_model,
        o.run.data.encoder.display(),
        o.run.grid,
        o.run.grid
    );
    println!(
        "  {:<30} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "test scenes", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "exact", "classes", "relations"
    );
    row(&r.baseline);
    row(&r.model);
    println!("  most frequent caption: {:?}", r.most_frequent_caption);
    if let Some(p) = &r.placement {
        println!(
            "attention inside the named item's box: {} of the mass, the box is {} of the grid ({} class words)",
            pct(p.mass_in_box),
            pct(p.box_share),
            p.words
        );
    }
    for (said, refs) in r.examples.iter().take(5) {
        let mark = if refs.contains(said) { "ok " } else { "ERR" };
        println!("  {mark} {said:<50} | {}", refs[0]);
    }
    if let Some(last) = o.history.last() {
        println!(
            "last epoch: {:.1}s, {:.0} {}",
            last.train_seconds, last.throughput, last.throughput_unit
        );
    }
    let d = o.dir.display();
    println!("run directory: {d}");
    println!("  {d}/report/caption_test.json, {d}/report/scenes/, {d}/report/training_curve.png");
    println!("  deepnet caption {d} {d}/report/scenes/test-0.png");
}
