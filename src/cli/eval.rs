//! `deepnet eval RUN_DIR|CHECKPOINT`.

use std::path::PathBuf;

use clap::Args;
use deepnet::tasks::classification::{eval_checkpoint, eval_report_dir};
use deepnet::Result;

use super::device::DeviceArg;

/// Arguments of `deepnet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory or a checkpoint.safetensors file.
    checkpoint: PathBuf,
    /// Test on this data instead of the run's own test images: an MNIST-format directory, or
    /// a folder with the run's classes. Its report goes to RUN/eval-<folder name>/; the run's
    /// own report/ is kept.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Refuse the checkpoint unless it holds this model.
    #[arg(long)]
    model: Option<String>,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

/// Runs `deepnet eval`: accuracy, per-class accuracy and the confusion matrix.
pub fn run(a: EvalArgs) -> Result<()> {
    let device = a.device.device()?;
    let r = eval_checkpoint(
        &a.checkpoint,
        a.data.as_deref(),
        a.model.as_deref(),
        &device,
    )?;
    println!(
        "test: {} images, accuracy {:.2}%, loss {:.4}",
        r.count,
        r.accuracy * 100.0,
        r.loss
    );
    println!("per-class accuracy:");
    for (name, acc) in r.class_names.iter().zip(&r.per_class_accuracy) {
        println!("  {name:<12} {:6.2}%", acc * 100.0);
    }
    println!("confusion matrix (rows: true, columns: predicted):");
    print!("  {:<12}", "");
    for i in 0..r.class_names.len() {
        print!("{i:>6}");
    }
    println!();
    for (i, row) in r.confusion.iter().enumerate() {
        print!("  {:<9}{i:>3}", truncate(&r.class_names[i], 9));
        for c in row {
            print!("{c:>6}");
        }
        println!();
    }
    if a.checkpoint.is_dir() {
        println!(
            "report written to {}/",
            eval_report_dir(&a.checkpoint, a.data.as_deref()).display()
        );
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
