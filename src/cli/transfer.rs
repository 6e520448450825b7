//! `deepnet transfer MODEL --weights FILE|--from RUN --data DIR`: the lecture's transfer
//! learning as one command. A zoo backbone with pretrained weights gets a new head for the
//! data's classes; `--mode features` freezes everything but the head (DeCAF: the backbone as a
//! fixed feature extractor, batch norms on their running statistics), `--mode finetune` trains
//! all layers, the backbone at `--backbone-lr-factor` times the head's learning rate.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deepnet::models::vision::ModelOptions;
use deepnet::tasks::classification::{Backbone, TransferMode, TransferRequest};
use deepnet::Result;

use super::train::{start, TrainOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Features,
    Finetune,
}

/// Arguments of `deepnet transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The zoo model of the backbone (e.g. resnet18, resnet20, googlenet).
    model: String,
    /// torchvision weights of MODEL: `.pth` (torch.save) or `.safetensors`.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    weights: Option<PathBuf>,
    /// A deepnet run of MODEL (directory or checkpoint file) as the backbone.
    #[arg(long, value_name = "RUN")]
    from: Option<PathBuf>,
    /// features: only the new head trains; finetune: every layer trains.
    #[arg(long, value_enum, default_value = "finetune")]
    mode: ModeArg,
    /// finetune: the backbone's learning rate as a fraction of the head's.
    #[arg(long, default_value_t = 0.1)]
    backbone_lr_factor: f64,
    /// GoogLeNet: torchvision's transform_input (its ImageNet weights need it on).
    #[arg(long)]
    transform_input: bool,
    #[command(flatten)]
    options: TrainOptions,
}

/// Runs `deepnet transfer`.
pub fn run(a: TransferArgs) -> Result<()> {
    let device = a.options.device()?;
    let req = a.options.request(
        &a.model,
        ModelOptions {
            transform_input: a.transform_input,
            no_aux: false,
        },
    )?;
    let backbone = match (a.weights, a.from) {
        (Some(w), _) => Backbone::Weights(w),
        (None, Some(r)) => Backbone::Run(r),
        (None, None) => unreachable!("clap requires --weights or --from"),
    };
    let transfer = TransferRequest {
        backbone,
        mode: match a.mode {
            ModeArg::Features => TransferMode::Features,
            ModeArg::Finetune => TransferMode::Finetune,
        },
        backbone_lr_factor: a.backbone_lr_factor,
    };
    start(&req, Some(&transfer), &device)
}
