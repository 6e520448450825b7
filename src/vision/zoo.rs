//! The model registry: `name -> builder`. `deepnet summary NAME`, `train NAME` and the loaders of
//! checkpoints all go through [`visit_model`], so adding a model is one file plus one line in
//! [`MODELS`] and one arm in [`visit_model`].

use burn::module::Module;
use burn::prelude::*;

use super::lenet::{Lenet5, Lenet5Classic, Lenet5ClassicConfig, Lenet5Config};
use super::summary::Trace;
use crate::error::{Error, Result};

/// A model that maps images `[batch, channels, height, width]` to class logits `[batch, classes]`.
pub trait ImageClassifier: Module + Clone + Send + 'static {
    /// Logits `[batch, classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
    /// Logits, recording each layer into `trace` (see [`Trace`]).
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2>;
}

impl ImageClassifier for Lenet5 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Lenet5::forward(self, images)
    }
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        Lenet5::forward_traced(self, images, trace)
    }
}

impl ImageClassifier for Lenet5Classic {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Lenet5Classic::forward(self, images)
    }
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        Lenet5Classic::forward_traced(self, images, trace)
    }
}

/// What the registry knows of a model before building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Registry name (`lenet5`).
    pub name: &'static str,
    /// One line for `deepnet --help` and summaries.
    pub description: &'static str,
    /// Input `[channels, height, width]` the model is built for.
    pub input: [usize; 3],
}

/// Every model deepnet can build, by name.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "lenet5",
        description: "LeNet-5, modern form: ReLU, max pool, full C3, linear output (61,706 parameters)",
        input: [1, 28, 28],
    },
    ModelSpec {
        name: "lenet5-1998",
        description: "LeNet-5 as published in 1998: scaled tanh, trainable subsampling, sparse C3, RBF output (60,000 parameters)",
        input: [1, 28, 28],
    },
];

/// The spec of `name`, or an error listing the known names.
pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<_> = MODELS.iter().map(|m| m.name).collect();
        Error::invalid(
            "model",
            format!("unknown model '{name}'; known models: {}", names.join(", ")),
        )
    })
}

/// Code that runs on a freshly built model of any type: the registry calls `visit` with the
/// concrete model, so training and evaluation are written once, generically.
pub trait ZooVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the model built by [`visit_model`].
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Self::Output;
}

/// Builds model `name` with `num_classes` outputs on `device` and hands it to `visitor`.
pub fn visit_model<V: ZooVisitor>(
    name: &str,
    num_classes: usize,
    device: &Device,
    visitor: V,
) -> Result<V::Output> {
    let spec = spec(name)?;
    if num_classes == 0 {
        return Err(Error::invalid("num_classes", "must be at least 1"));
    }
    Ok(match name {
        "lenet5" => visitor.visit(
            Lenet5Config::new()
                .with_num_classes(num_classes)
                .init(device),
            spec,
        ),
        "lenet5-1998" => visitor.visit(
            Lenet5ClassicConfig::new()
                .with_num_classes(num_classes)
                .init(device),
            spec,
        ),
        _ => unreachable!("every name in MODELS has a builder arm"),
    })
}
