//! `deepnet summary MODEL`.

use burn::tensor::Device;
use clap::Args;
use deepnet::models::vision::summary::{totals, trainable_params};
use deepnet::models::vision::{
    summarize, visit_model, ImageClassifier, ModelSpec, ZooVisitor, MODELS,
};
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Arguments of `deepnet summary`.
#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Model name; omit it (or pass --list) to list the models.
    model: Option<String>,
    /// List the models.
    #[arg(long)]
    list: bool,
    /// Number of classes of the output layer (default: the model's, 1000 for ImageNet models).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Input size CxHxW (default: the model's, e.g. 3x224x224).
    #[arg(long)]
    input: Option<String>,
    /// Count the parameters as `deepnet train --freeze` would freeze them (comma-separated
    /// globs over parameter paths; `!` excludes): trainable and frozen.
    #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
    freeze: Vec<String>,
    /// Compute device of the tracing forward pass.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

struct Print {
    input: Option<[usize; 3]>,
    freeze: Vec<String>,
    device: Device,
}

impl ZooVisitor for Print {
    type Output = Result<()>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<()> {
        let input = self.input.unwrap_or(spec.input);
        let entries = deepnet::weights::paths::param_entries(&model);
        let (trainable, frozen) = deepnet::train::groups::counts_if_frozen(&entries, &self.freeze)?;
        let layers = summarize(&model, input, &self.device);
        println!("{}: {}", spec.name, spec.description);
        println!("input: {}x{}x{}", input[0], input[1], input[2]);
        println!(
            "{:<28} {:<26} {:>14} {:>12} {:>15} {:>5}",
            "layer", "kind", "output", "params", "mult-adds", "RF"
        );
        for l in &layers {
            let shape = l
                .output_shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x");
            println!(
                "{:<28} {:<26} {:>14} {:>12} {:>15} {:>5}",
                l.name,
                l.kind,
                shape,
                group(l.params as u64),
                group(l.mult_adds),
                l.receptive_field
            );
        }
        let t = totals(&layers);
        println!(
            "parameters used by the forward pass: {}",
            group(t.params as u64)
        );
        println!(
            "parameters of the model: {}",
            group(trainable_params(&model) as u64)
        );
        println!(
            "trainable parameters: {}, frozen: {}",
            group(trainable as u64),
            group(frozen as u64)
        );
        println!(
            "total mult-adds: {} ({:.4} M)",
            group(t.mult_adds),
            t.mult_adds as f64 / 1e6
        );
        Ok(())
    }
}

/// `3x224x224` -> `[3, 224, 224]`.
fn parse_input(s: &str) -> Result<[usize; 3]> {
    let bad = || Error::invalid("--input", format!("'{s}' is not CxHxW, e.g. 3x224x224"));
    let v: Vec<usize> = s
        .split('x')
        .map(|p| p.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match v[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(bad()),
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
            let spec = deepnet::models::vision::spec(name)?;
            let classes = a.num_classes.unwrap_or(spec.classes);
            if classes == 0 || classes > deepnet::models::vision::MAX_CLASSES {
                return Err(Error::invalid(
                    "--num-classes",
                    format!(
                        "{classes}: must be between 1 and {}",
                        deepnet::models::vision::MAX_CLASSES
                    ),
                ));
            }
            let input = a.input.as_deref().map(parse_input).transpose()?;
            if let Some(i) = input {
                deepnet::models::vision::check_input(spec, i)?;
            }
            let device = a.device.device()?;
            visit_model(
                name,
                classes,
                &device,
                Print {
                    input,
                    freeze: a.freeze.clone(),
                    device: device.clone(),
                },
            )?
        }
        _ => {
            for m in MODELS {
                println!("{:<14} {}", m.name, m.description);
            }
            Ok(())
        }
    }
}
