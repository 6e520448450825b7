//! AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form: five convolutions, three
//! max pools, adaptive average pooling to 6×6, three fully connected layers with dropout.
//! 61,100,840 parameters for 1000 classes.
//!
//! torchvision names its layers by position in `nn.Sequential`s: the convolutions are
//! `features.{0,3,6,8,10}` and the linear layers `classifier.{1,4,6}`; here they are
//! `features.{0..5}` and `classifier.{0..3}` ([`AlexNet::TORCH_FEATURES`] and
//! [`AlexNet::TORCH_CLASSIFIER`] give torchvision's indices).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::blocks::{conv, linear, max_pool};
use super::summary::Trace;
use crate::ops::{conv2d_layer, max_pool2d_layer};

/// Configuration of [`AlexNet`].
#[derive(Config, Debug)]
pub struct AlexNetConfig {
    /// Classes of the output layer (default 1000).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels (default 3).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Dropout before the first two linear layers (default 0.5).
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// AlexNet; see the module documentation.
#[derive(Module, Debug)]
pub struct AlexNet {
    /// The five convolutions: 11×11/4 → 64, 5×5 → 192, 3×3 → 384, 256, 256.
    pub features: Vec<Conv2d>,
    /// 9216 → 4096 → 4096 → classes.
    pub classifier: Vec<Linear>,
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
}

impl AlexNetConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> AlexNet {
        AlexNet {
            features: vec![
                conv([self.in_channels, 64], 11, 4, 2, true, device),
                conv([64, 192], 5, 1, 2, true, device),
                conv([192, 384], 3, 1, 1, true, device),
                conv([384, 256], 3, 1, 1, true, device),
                conv([256, 256], 3, 1, 1, true, device),
            ],
            classifier: vec![
                linear(256 * 6 * 6, 4096, device),
                linear(4096, 4096, device),
                linear(4096, self.num_classes, device),
            ],
            pool: max_pool(3, 2, 0, false),
            avgpool: AdaptiveAvgPool2dConfig::new([6, 6]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl AlexNet {
    /// torchvision's `features.N` index of each convolution.
    pub const TORCH_FEATURES: [usize; 5] = [0, 3, 6, 8, 10];
    /// torchvision's `classifier.N` index of each linear layer.
    pub const TORCH_CLASSIFIER: [usize; 3] = [1, 4, 6];

    /// The torchvision key of the parameter at burn path `path` (`features.1.weight` ->
    /// `features.3.weight`).
    pub fn torch_key(&self, path: &str) -> String {
        use crate::weights::torchvision::remap_index;
        let key = remap_index(path, "features", &|i| Self::TORCH_FEATURES.get(i).copied());
        remap_index(&key, "classifier", &|i| {
            Self::TORCH_CLASSIFIER.get(i).copied()
        })
    }

    /// `[batch, C, H, W]` (H, W ≥ 63) -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording every layer into `trace`.
    pub fn forward_traced(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let mut x = x;
        for (i, c) in self.features.iter().enumerate() {
            x = relu(conv2d_layer(c, x));
            trace.conv(&format!("features.{}", Self::TORCH_FEATURES[i]), c, &x);
            if matches!(i, 0 | 1 | 4) {
                x = max_pool2d_layer(&self.pool, x);
                trace.pool("maxpool", "MaxPool 3x3 s2", 3, 2, &x);
            }
        }
        let x = self.avgpool.forward(x); // [batch, 256, 6, 6]
        trace.op("avgpool", "AdaptiveAvgPool 6x6", &x);
        let mut x = x.flatten::<2>(1, 3); // [batch, 9216]
        let last = self.classifier.len() - 1;
        for (i, l) in self.classifier.iter().enumerate() {
            if i < last {
                x = relu(l.forward(self.dropout.forward(x)));
            } else {
                x = l.forward(x);
            }
            trace.linear(&format!("classifier.{}", Self::TORCH_CLASSIFIER[i]), l, &x);
        }
        x
    }
}
