//! `deepnet summary MODEL`.

use burn::tensor::Device;
use clap::Args;
use deepnet::vision::summary::totals;
use deepnet::vision::{summarize, visit_model, ImageClassifier, ModelSpec, ZooVisitor, MODELS};
use deepnet::{Error, Result};

/// Arguments of `deepnet summary`.
#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Model name; omit it (or pass --list) to list the models.
    model: Option<String>,
    /// List the models.
    #[arg(long)]
    list: bool,
    /// Number of classes of the output layer.
    #[arg(long, default_value_t = 10)]
    num_classes: usize,
}

struct Print;

impl ZooVisitor for Print {
    type Output = ();
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) {
        let layers = summarize(&model, spec.input, &Device::flex());
        println!("{}: {}", spec.name, spec.description);
        println!(
            "input: {}x{}x{}",
            spec.input[0], spec.input[1], spec.input[2]
        );
        println!(
            "{:<10} {:<34} {:>16} {:>12} {:>14}",
            "layer", "kind", "output", "params", "mult-adds"
        );
        for l in &layers {
            let shape = l
                .output_shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x");
            println!(
                "{:<10} {:<34} {:>16} {:>12} {:>14}",
                l.name,
                l.kind,
                shape,
                group(l.params as u64),
                group(l.mult_adds)
            );
        }
        let t = totals(&layers);
        println!("total parameters: {}", group(t.params as u64));
        println!("trainable parameters: {}", group(model.num_params() as u64));
        println!(
            "total mult-adds: {} ({:.4} M)",
            group(t.mult_adds),
            t.mult_adds as f64 / 1e6
        );
    }
}

/// `1234567` -> `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs `deepnet summary`.
pub fn run(a: SummaryArgs) -> Result<()> {
    match (&a.model, a.list) {
        (Some(name), false) => {
            if a.num_classes == 0 {
                return Err(Error::invalid("--num-classes", "must be at least 1"));
            }
            visit_model(name, a.num_classes, &Device::flex(), Print)
        }
        _ => {
            for m in MODELS {
                println!("{:<14} {}", m.name, m.description);
            }
            Ok(())
        }
    }
}
