//! Convolutional networks, one file per family, and the registry that names them; and the
//! fully convolutional segmentation networks ([`fcn`]).

pub mod alexnet;
mod blocks;
pub mod fcn;
pub mod googlenet;
pub mod lenet;
pub mod resnet;
pub mod summary;
pub mod vgg;
pub mod zoo;

pub use lenet::{Lenet5, Lenet5Classic, Lenet5ClassicConfig, Lenet5Config};
pub use summary::{LayerStat, Trace};
pub use zoo::{
    check_input, check_input_side, input_sides, spec, visit_model, visit_model_with,
    ImageClassifier, ModelOptions, ModelSpec, ZooVisitor, MAX_CLASSES, MAX_INPUT_SIDE, MODELS,
};

use burn::prelude::*;

/// Per-layer statistics of `model` for one input of shape `input` = `[channels, height, width]`.
pub fn summarize<M: ImageClassifier>(
    model: &M,
    input: [usize; 3],
    device: &Device,
) -> Vec<LayerStat> {
    let x = Tensor::<4>::zeros([1, input[0], input[1], input[2]], device);
    let mut trace = Trace::on();
    let _ = model.forward_traced(x, &mut trace);
    trace.into_layers()
}
