//! Small builders shared by the CNN families (torchvision's defaults), and the trace of a batch
//! norm.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use super::summary::Trace;

/// A `k×k` convolution, stride `stride`, symmetric zero padding `pad`.
pub(crate) fn conv(
    channels: [usize; 2],
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}

/// Batch norm over `c` channels with PyTorch's defaults (ε = 1e-5 unless given, momentum 0.1).
pub(crate) fn bn(c: usize, eps: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(eps).init(device)
}

/// Max pooling `k×k`, stride `s`, padding `p`, PyTorch's `ceil_mode`.
pub(crate) fn max_pool(k: usize, s: usize, p: usize, ceil: bool) -> MaxPool2d {
    MaxPool2dConfig::new([k, k])
        .with_strides([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_ceil_mode(ceil)
        .init()
}

/// A fully connected layer `in -> out`.
pub(crate) fn linear(inputs: usize, outputs: usize, device: &Device) -> Linear {
    LinearConfig::new(inputs, outputs).init(device)
}

impl Trace {
    /// Records a batch norm whose output is `out` (its multiply-adds are not counted, as in
    /// torchvision's figures).
    pub fn bn(&mut self, name: &str, bn: &BatchNorm, out: &Tensor<4>) {
        if self.is_on() {
            let c = out.dims()[1];
            self.record(
                name,
                || format!("BatchNorm {c}"),
                &out.dims(),
                super::summary::trainable_params(bn),
                0,
            );
        }
    }
}
