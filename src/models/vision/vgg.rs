//! VGG (Simonyan & Zisserman 2015): stacks of 3×3 convolutions, stride 1, "same" padding, each
//! followed by ReLU (and batch norm in the `_bn` forms), with 2×2 max pools of stride 2 between
//! the stages; then adaptive average pooling to 7×7 and three fully connected layers. Two 3×3
//! layers see a 5×5 window with fewer parameters (2·9·C² against 25·C²) and one more ReLU.
//!
//! torchvision numbers the layers of `features` by position (conv, \[bn,\] relu, ..., pool): the
//! `i`-th convolution here is `features.{i}`, its batch norm `bn.{i}`;
//! [`Vgg::torch_feature_indices`] gives torchvision's positions.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::blocks::{bn, conv, linear, max_pool};
use super::summary::Trace;
use crate::ops::{conv2d_layer, max_pool2d_layer};

/// `M` in a layer list: a 2×2 max pool.
pub const POOL: usize = 0;

/// The layer lists of the paper's configurations A, B, D, E (VGG-11, 13, 16, 19).
pub fn layers(depth: usize) -> Option<Vec<usize>> {
    const M: usize = POOL;
    Some(match depth {
        11 => vec![64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        13 => vec![
            64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M,
        ],
        16 => vec![
            64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
        ],
        19 => vec![
            64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512,
            512, M,
        ],
        _ => return None,
    })
}

/// Configuration of a [`Vgg`].
#[derive(Config, Debug)]
pub struct VggConfig {
    /// Output channels of each 3×3 convolution, [`POOL`] for a max pool.
    pub layers: Vec<usize>,
    /// Batch norm after every convolution.
    #[config(default = false)]
    pub batch_norm: bool,
    /// Classes (default 1000).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels (default 3).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Side of the adaptive average pooling before the classifier (default 7).
    #[config(default = 7)]
    pub pool_size: usize,
    /// Hidden widths of the classifier (default [4096, 4096]).
    #[config(default = "vec![4096, 4096]")]
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer (default 0.5).
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// VGG; see the module documentation.
#[derive(Module, Debug)]
pub struct Vgg {
    /// The convolutions in order.
    pub features: Vec<Conv2d>,
    /// One batch norm per convolution (empty without batch norm).
    pub bn: Vec<BatchNorm>,
    /// The fully connected layers.
    pub classifier: Vec<Linear>,
    #[module(skip)]
    layers: Vec<usize>,
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
}

impl VggConfig {
    /// VGG-`depth` (11, 13, 16 or 19) with `num_classes` outputs, torchvision's layout.
    pub fn depth(depth: usize, batch_norm: bool, num_classes: usize) -> Option<Self> {
        Some(
            VggConfig::new(layers(depth)?)
                .with_batch_norm(batch_norm)
                .with_num_classes(num_classes),
        )
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> Vgg {
        let mut features = Vec::new();
        let mut bns = Vec::new();
        let mut c = self.in_channels;
        for &l in self.layers.iter().filter(|&&l| l != POOL) {
            features.push(conv([c, l], 3, 1, 1, true, device));
            if self.batch_norm {
                bns.push(bn(l, 1e-5, device));
            }
            c = l;
        }
        let mut classifier = Vec::new();
        let mut width = c * self.pool_size * self.pool_size;
        for &h in &self.hidden {
            classifier.push(linear(width, h, device));
            width = h;
        }
        classifier.push(linear(width, self.num_classes, device));
        Vgg {
            features,
            bn: bns,
            classifier,
            layers: self.layers.clone(),
            pool: max_pool(2, 2, 0, false),
            avgpool: AdaptiveAvgPool2dConfig::new([self.pool_size, self.pool_size]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl Vgg {
    /// torchvision's `features.N` index of each convolution (its batch norm is `N + 1`).
    pub fn torch_feature_indices(&self) -> Vec<usize> {
        let per_conv = if self.bn.is_empty() { 2 } else { 3 };
        let mut out = Vec::new();
        let mut pos = 0;
        for &l in &self.layers {
            if l == POOL {
                pos += 1;
            } else {
                out.push(pos);
                pos += per_conv;
            }
        }
        out
    }

    /// The torchvision key of the parameter at burn path `path`: the `i`-th convolution is
    /// `features.{torch_feature_indices()[i]}`, its batch norm the next index, the linear layers
    /// `classifier.{0,3,6}`.
    pub fn torch_key(&self, path: &str) -> String {
        use crate::weights::torchvision::{default_torch_key, remap_index};
        let idx = self.torch_feature_indices();
        let key = remap_index(path, "features", &|i| idx.get(i).copied());
        let key = match key.strip_prefix("bn.") {
            Some(rest) => remap_index(&format!("features.{rest}"), "features", &|i| {
                idx.get(i).map(|p| p + 1)
            }),
            None => key,
        };
        let key = remap_index(&key, "classifier", &|k| Some(3 * k));
        default_torch_key(&key)
    }

    /// `[batch, C, H, W]` -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording every layer into `trace`.
    pub fn forward_traced(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let mut x = x;
        let mut i = 0;
        for &l in &self.layers {
            if l == POOL {
                x = max_pool2d_layer(&self.pool, x);
                trace.pool("maxpool", "MaxPool 2x2 s2", 2, 2, &x);
                continue;
            }
            let c = &self.features[i];
            x = conv2d_layer(c, x);
            trace.conv(&format!("features.{i}"), c, &x);
            if let Some(b) = self.bn.get(i) {
                x = crate::ops::batch_norm_layer(b, x);
                trace.bn(&format!("bn.{i}"), b, &x);
            }
            x = relu(x);
            i += 1;
        }
        let x = self.avgpool.forward(x);
        trace.op("avgpool", "AdaptiveAvgPool", &x);
        let mut x = x.flatten::<2>(1, 3);
        let last = self.classifier.len() - 1;
        for (k, l) in self.classifier.iter().enumerate() {
            x = l.forward(x);
            trace.linear(&format!("classifier.{k}"), l, &x);
            if k < last {
                x = self.dropout.forward(relu(x));
            }
        }
        x
    }
}
