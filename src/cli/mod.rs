//! Command-line interface: argument parsing, progress display and printing. All the work is done
//! by the library; errors come back as [`deepnet::Error`] and leave with exit code 1 (2 for bad
//! usage, from clap).

mod caption;
mod caption_train;
mod device;
mod eval;
mod export;
mod forecast;
mod forecast_train;
mod generate;
mod gradients;
mod infer;
mod instance_train;
mod langid;
mod langid_train;
mod lm_train;
mod memory_bench;
mod predict;
mod progress;
mod segment;
mod segment_train;
mod summary;
mod train;
mod transfer;
mod translate;
mod translate_train;
mod visualize;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// deepnet: classic deep networks, trained, evaluated and inspected, in Rust on burn.
#[derive(Parser, Debug)]
#[command(name = "deepnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model and write a run directory (metrics, checkpoints, TensorBoard, report).
    Train(train::TrainArgs),
    /// Transfer learning: a pretrained zoo backbone, a new head for your classes, trained on your images.
    Transfer(transfer::TransferArgs),
    /// Write a run's (or a weights file's) weights under torchvision's names (.pth or .safetensors).
    Export(export::ExportArgs),
    /// Evaluate a run directory or checkpoint on the test split.
    Eval(eval::EvalArgs),
    /// Classify image files with a trained checkpoint (top-k with class names).
    Predict(predict::PredictArgs),
    /// Per-layer output shapes, parameters and multiply-adds of a model.
    Summary(summary::SummaryArgs),
    /// Raw logits of a zoo model with torchvision weights for a float32 N×C×H×W .npy input.
    Infer(infer::InferArgs),
    /// Draw the first layer's filters or an image's feature maps at each stage (PNG grids).
    Visualize(visualize::VisualizeArgs),
    /// Train a character-level bidirectional LSTM/GRU language identifier (fortunes in nine languages), with a naive Bayes baseline.
    LangidTrain(langid_train::LangIdTrainArgs),
    /// The most likely languages of texts, from a langid-train run.
    Langid(langid::LangIdArgs),
    /// Train a character-level LSTM/GRU language model with truncated BPTT (fortunes), with a Kneser-Ney 5-gram baseline.
    LmTrain(lm_train::LmTrainArgs),
    /// Write text with a trained character language model.
    Generate(generate::GenerateArgs),
    /// Train grapheme to phoneme on CMUdict: a bidirectional encoder and an attention decoder, scored by WER/PER, greedy and beam.
    TranslateTrain(translate_train::TranslateTrainArgs),
    /// Pronounce words (ARPAbet) with a translate-train run, greedy or beam search.
    Translate(translate::TranslateArgs),
    /// Train an image captioner with soft attention (or Show and Tell) on generated Fashion-MNIST scenes.
    CaptionTrain(caption_train::CaptionTrainArgs),
    /// Caption 64x64 grey scenes with a caption-train run.
    Caption(caption::CaptionArgs),
    /// Train a video predictor on Moving Fashion-MNIST: ConvLSTM encoder-forecaster or FC-LSTM, against the last frame.
    ForecastTrain(forecast_train::ForecastTrainArgs),
    /// Predict the next 10 frames of a sequence of 64x64 grey frames with a forecast-train run.
    Forecast(forecast::ForecastArgs),
    /// Train a fully convolutional network (FCN-32s/16s/8s) to segment generated Fashion-MNIST scenes.
    SegmentTrain(segment_train::SegmentTrainArgs),
    /// Class masks of 64x64 grey scenes with a segment-train run (index, colour and overlay PNGs).
    Segment(segment::SegmentArgs),
    /// Train a recurrent instance segmenter (CNN + ConvLSTM, one item per step, Hungarian matching loss) on generated scenes.
    InstanceTrain(instance_train::InstanceTrainArgs),
    /// Long-term dependencies: adding, copy and sequential Fashion-MNIST for tanh RNN, IRNN, LSTM, GRU.
    MemoryBench(memory_bench::MemoryBenchArgs),
    /// Measure ‖∂L/∂h_t‖ through time for RNN/LSTM/GRU and the recurrent matrix's spectrum.
    Gradients(gradients::GradientsArgs),
}

/// Parses the command line, runs the command, maps errors to a message and an exit code.
pub fn run() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let subcommand = matches.subcommand_name().unwrap_or_default().to_string();
    if let Err(e) = check_resume_flags(&matches) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Transfer(a) => transfer::run(a),
        Command::Export(a) => export::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Gradients(a) => gradients::run(a),
        Command::LangidTrain(a) => langid_train::run(a),
        Command::Langid(a) => langid::run(a),
        Command::LmTrain(a) => lm_train::run(a),
        Command::Generate(a) => generate::run(a),
        Command::MemoryBench(a) => memory_bench::run(a),
        Command::TranslateTrain(a) => translate_train::run(a),
        Command::CaptionTrain(a) => caption_train::run(a),
        Command::Caption(a) => caption::run(a),
        Command::ForecastTrain(a) => forecast_train::run(a),
        Command::Forecast(a) => forecast::run(a),
        Command::SegmentTrain(a) => segment_train::run(a),
        Command::Segment(a) => segment::run(a),
        Command::InstanceTrain(a) => instance_train::run(a),
        Command::Translate(a) => translate::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Visualize(a) => visualize::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", in_flag_terms(&subcommand, &e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The message of `e`, with a setting the library names by its field (`batch_size`) named by
/// the flag of `subcommand` that sets it (`--batch-size`), when there is one: the library
/// knows no command line, the user knows only that.
/// What a resumed run may be told: how many epochs in all, where to compute, and the model
/// name `train` takes anyway (checked against the run's).
const RESUME_FLAGS: [&str; 4] = ["resume", "epochs", "device", "model"];

/// A resumed run continues with the settings it was started with (they are in its
/// `config.json` and its optimizer state): any other flag on the command line would be
/// silently ignored, so it is refused, named.
fn check_resume_flags(matches: &clap::ArgMatches) -> Result<(), String> {
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(());
    };
    // The arguments of the subcommand (its ids also name argument groups).
    let args: Vec<String> = Cli::command()
        .find_subcommand(name)
        .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
        .unwrap_or_default();
    let given = |id: &str| {
        sub.try_get_raw(id).ok().flatten().is_some()
            && sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    if !given("resume") {
        return Ok(());
    }
    let mut extra: Vec<String> = args
        .iter()
        .map(String::as_str)
        .filter(|id| !RESUME_FLAGS.contains(id) && given(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    extra.sort();
    if extra.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} cannot change a resumed run: it continues with the settings it was started with (only --epochs and --device apply); start a new run with --out to change them",
        extra.join(", ")
    ))
}

fn in_flag_terms(subcommand: &str, e: &deepnet::Error) -> String {
    if let deepnet::Error::InvalidArgument { what, reason } = e {
        // Settings whose flag is not their name.
        let long = match what.as_str() {
            "run directory" => "out".to_string(),
            other => other.replace('_', "-"),
        };
        let cmd = Cli::command();
        let has_flag = cmd.find_subcommand(subcommand).is_some_and(|c| {
            c.get_arguments()
                .any(|a| a.get_long() == Some(long.as_str()))
        });
        if has_flag {
            return format!("invalid --{long}: {reason}");
        }
    }
    e.to_string()
}
