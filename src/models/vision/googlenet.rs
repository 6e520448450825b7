//! GoogLeNet (Szegedy et al. 2015, Inception v1) in torchvision's form: batch norm after every
//! convolution, auxiliary classifiers after inception 4a and 4d during training, optional
//! `transform_input`. 6,624,904 parameters without the auxiliary heads, 13,004,888 with them.
//!
//! An [`Inception`] block runs four branches side by side and concatenates them on channels:
//! 1×1; 1×1 reduce then 3×3; 1×1 reduce then "5×5" (torchvision uses 3×3 here, as its weights
//! do); 3×3 max pool then 1×1 projection. The 1×1 reductions are the paper's point: they cut the
//! channels before the expensive convolutions. The naive module of the paper's figure 2(a) —
//! 1×1, 3×3 and 5×5 convolutions and a 3×3 max pool straight on the input, concatenated — is the
//! same block with [`InceptionConfig::naive`].
//!
//! Names follow torchvision (`conv1.conv`, `inception3a.branch2.1.bn`, `aux1.fc2`), except the
//! pool branch's convolution: torchvision's `branch4.1` is `branch4` here.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::blocks::{bn, conv, linear, max_pool};
use super::summary::Trace;
use crate::ops::{batch_norm_relu_layer, max_pool2d_layer};

/// Convolution (no bias), batch norm (ε = 0.001), ReLU: torchvision's `BasicConv2d`.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl BasicConv2d {
    fn new(channels: [usize; 2], k: usize, stride: usize, pad: usize, device: &Device) -> Self {
        BasicConv2d {
            conv: conv(channels, k, stride, pad, false, device),
            bn: bn(channels[1], 1e-3, device),
        }
    }

    fn forward(&self, x: Tensor<4>, trace: &mut Trace, name: &str) -> Tensor<4> {
        let y = crate::ops::conv2d_layer(&self.conv, x);
        trace.conv(&format!("{name}.conv"), &self.conv, &y);
        let y = batch_norm_relu_layer(&self.bn, y);
        trace.bn(&format!("{name}.bn"), &self.bn, &y);
        y
    }
}

/// Configuration of an [`Inception`] block (torchvision's argument names).
#[derive(Config, Debug)]
pub struct InceptionConfig {
    /// Input channels.
    pub in_channels: usize,
    /// 1×1 branch.
    pub ch1x1: usize,
    /// 1×1 reduction before the 3×3 (unused by the naive module).
    pub ch3x3red: usize,
    /// 3×3 branch.
    pub ch3x3: usize,
    /// 1×1 reduction before the "5×5" (unused by the naive module).
    pub ch5x5red: usize,
    /// "5×5" branch.
    pub ch5x5: usize,
    /// 1×1 projection after the pool (unused by the naive module).
    pub pool_proj: usize,
    /// The paper's naive module: no reductions, a real 5×5, the pool's output as is.
    #[config(default = false)]
    pub naive: bool,
}

/// An Inception block; see the module documentation.
#[derive(Module, Debug)]
pub struct Inception {
    /// 1×1.
    pub branch1: BasicConv2d,
    /// [1×1 reduce,] 3×3.
    pub branch2: Vec<BasicConv2d>,
    /// [1×1 reduce,] 5×5 (3×3 in torchvision's reduced module).
    pub branch3: Vec<BasicConv2d>,
    /// 1×1 projection after the pool (absent in the naive module).
    pub branch4: Option<BasicConv2d>,
    pool: MaxPool2d,
}

impl InceptionConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> Inception {
        let c = self.in_channels;
        let (branch2, branch3, branch4) = if self.naive {
            (
                vec![BasicConv2d::new([c, self.ch3x3], 3, 1, 1, device)],
                vec![BasicConv2d::new([c, self.ch5x5], 5, 1, 2, device)],
                None,
            )
        } else {
            (
                vec![
                    BasicConv2d::new([c, self.ch3x3red], 1, 1, 0, device),
                    BasicConv2d::new([self.ch3x3red, self.ch3x3], 3, 1, 1, device),
                ],
                vec![
                    BasicConv2d::new([c, self.ch5x5red], 1, 1, 0, device),
                    BasicConv2d::new([self.ch5x5red, self.ch5x5], 3, 1, 1, device),
                ],
                Some(BasicConv2d::new([c, self.pool_proj], 1, 1, 0, device)),
            )
        };
        Inception {
            branch1: BasicConv2d::new([c, self.ch1x1], 1, 1, 0, device),
            branch2,
            branch3,
            branch4,
            pool: max_pool(3, 1, 1, true),
        }
    }

    /// Output channels: the four branches concatenated.
    pub fn out_channels(&self) -> usize {
        let last = if self.naive {
            self.in_channels
        } else {
            self.pool_proj
        };
        self.ch1x1 + self.ch3x3 + self.ch5x5 + last
    }
}

impl Inception {
    /// `[batch, C, H, W]` -> `[batch, out, H, W]`.
    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace, name: &str) -> Tensor<4> {
        // Each branch starts from the block's input; the concatenation sees the widest.
        let entry = trace.geometry();
        let b1 = self
            .branch1
            .forward(x.clone(), trace, &format!("{name}.branch1"));
        let mut merged = trace.geometry();
        trace.set_geometry(entry);
        let mut b2 = x.clone();
        for (i, l) in self.branch2.iter().enumerate() {
            b2 = l.forward(b2, trace, &format!("{name}.branch2.{i}"));
        }
        merged = merged.max(trace.geometry());
        trace.set_geometry(entry);
        let mut b3 = x.clone();
        for (i, l) in self.branch3.iter().enumerate() {
            b3 = l.forward(b3, trace, &format!("{name}.branch3.{i}"));
        }
        merged = merged.max(trace.geometry());
        trace.set_geometry(entry);
        let mut b4 = max_pool2d_layer(&self.pool, x);
        trace.pool(&format!("{name}.pool"), "MaxPool 3x3 s1", 3, 1, &b4);
        if let Some(p) = &self.branch4 {
            b4 = p.forward(b4, trace, &format!("{name}.branch4"));
        }
        merged = merged.max(trace.geometry());
        trace.set_geometry(merged);
        let y = Tensor::cat(vec![b1, b2, b3, b4], 1);
        trace.op(name, "Concat", &y);
        y
    }
}

/// An auxiliary classifier: 4×4 average pool, 1×1 conv to 128, FC 2048 → 1024, dropout 0.7, FC.
#[derive(Module, Debug)]
pub struct InceptionAux {
    /// 1×1 convolution to 128 channels.
    pub conv: BasicConv2d,
    /// 2048 → 1024.
    pub fc1: Linear,
    /// 1024 → classes.
    pub fc2: Linear,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
}

impl InceptionAux {
    fn new(in_channels: usize, classes: usize, device: &Device) -> Self {
        InceptionAux {
            conv: BasicConv2d::new([in_channels, 128], 1, 1, 0, device),
            fc1: linear(2048, 1024, device),
            fc2: linear(1024, classes, device),
            avgpool: AdaptiveAvgPool2dConfig::new([4, 4]).init(),
            dropout: DropoutConfig::new(0.7).init(),
        }
    }

    /// `[batch, C, H, W]` -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(x); // [batch, C, 4, 4]
        let x = self.conv.forward(x, &mut Trace::off(), "conv"); // [batch, 128, 4, 4]
        let x = relu(self.fc1.forward(x.flatten::<2>(1, 3))); // [batch, 1024]
        self.fc2.forward(self.dropout.forward(x))
    }
}

/// Configuration of [`GoogLeNet`].
#[derive(Config, Debug)]
pub struct GoogLeNetConfig {
    /// Classes (default 1000).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// The two auxiliary classifiers (default true, as torchvision builds it for training).
    #[config(default = true)]
    pub aux_logits: bool,
    /// Re-normalise inputs from ImageNet mean/std to [-1, 1] as torchvision's pretrained weights
    /// expect (default false).
    #[config(default = false)]
    pub transform_input: bool,
    /// Naive Inception modules instead of the 1×1-reduced ones (default false).
    #[config(default = false)]
    pub naive: bool,
    /// Dropout before the classifier (default 0.2).
    #[config(default = 0.2)]
    pub dropout: f64,
}

/// GoogLeNet; see the module documentation.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// 7×7/2, 64.
    pub conv1: BasicConv2d,
    /// 1×1, 64.
    pub conv2: BasicConv2d,
    /// 3×3, 192.
    pub conv3: BasicConv2d,
    /// Inception 3a.
    pub inception3a: Inception,
    /// Inception 3b.
    pub inception3b: Inception,
    /// Inception 4a.
    pub inception4a: Inception,
    /// Inception 4b.
    pub inception4b: Inception,
    /// Inception 4c.
    pub inception4c: Inception,
    /// Inception 4d.
    pub inception4d: Inception,
    /// Inception 4e.
    pub inception4e: Inception,
    /// Inception 5a.
    pub inception5a: Inception,
    /// Inception 5b.
    pub inception5b: Inception,
    /// Auxiliary classifier after 4a (training only).
    pub aux1: Option<InceptionAux>,
    /// Auxiliary classifier after 4d (training only).
    pub aux2: Option<InceptionAux>,
    /// 1024 → classes.
    pub fc: Linear,
    pool3s2: MaxPool2d,
    pool2s2: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
    transform_input: bool,
}

/// The paper's Table 1: `(in, 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool proj)` of 3a ... 5b.
const TABLE: [[usize; 7]; 9] = [
    [192, 64, 96, 128, 16, 32, 32],
    [256, 128, 128, 192, 32, 96, 64],
    [480, 192, 96, 208, 16, 48, 64],
    [512, 160, 112, 224, 24, 64, 64],
    [512, 128, 128, 256, 24, 64, 64],
    [512, 112, 144, 288, 32, 64, 64],
    [528, 256, 160, 320, 32, 128, 128],
    [832, 256, 160, 320, 32, 128, 128],
    [832, 384, 192, 384, 48, 128, 128],
];

impl GoogLeNetConfig {
    /// Builds the network. With naive modules, each block's input is the previous block's
    /// output (the pool branch passes all its channels on, so widths grow).
    pub fn init(&self, device: &Device) -> GoogLeNet {
        let mut blocks = Vec::with_capacity(9);
        let mut widths = Vec::with_capacity(9);
        let mut c = 192;
        for row in TABLE {
            // row[0] is the paper's input width; with naive modules the real one is larger.
            let cfg = InceptionConfig::new(c, row[1], row[2], row[3], row[4], row[5], row[6])
                .with_naive(self.naive);
            c = cfg.out_channels();
            widths.push(c);
            blocks.push(cfg.init(device));
        }
        let mut b = blocks.into_iter();
        let mut next = || b.next().expect("nine blocks");
        GoogLeNet {
            conv1: BasicConv2d::new([3, 64], 7, 2, 3, device),
            conv2: BasicConv2d::new([64, 64], 1, 1, 0, device),
            conv3: BasicConv2d::new([64, 192], 3, 1, 1, device),
            inception3a: next(),
            inception3b: next(),
            inception4a: next(),
            inception4b: next(),
            inception4c: next(),
            inception4d: next(),
            inception4e: next(),
            inception5a: next(),
            inception5b: next(),
            aux1: self
                .aux_logits
                .then(|| InceptionAux::new(widths[2], self.num_classes, device)),
            aux2: self
                .aux_logits
                .then(|| InceptionAux::new(widths[5], self.num_classes, device)),
            fc: linear(widths[8], self.num_classes, device),
            pool3s2: max_pool(3, 2, 0, true),
            pool2s2: max_pool(2, 2, 0, true),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            transform_input: self.transform_input,
        }
    }
}

impl GoogLeNet {
    /// The torchvision key of the parameter at burn path `path`.
    pub fn torch_key(&self, path: &str) -> String {
        crate::weights::torchvision::default_torch_key(path)
    }

    /// `[batch, 3, H, W]` -> logits `[batch, classes]` (the auxiliary heads are not run).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording every layer into `trace`.
    pub fn forward_traced(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        self.run(x, trace, false).0
    }

    /// Training forward: the main logits and, when the model has them, the two auxiliary
    /// classifiers' logits (torchvision weighs their losses by 0.3).
    pub fn forward_aux(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>, Option<Tensor<2>>) {
        self.run(x, &mut Trace::off(), true)
    }

    fn run(
        &self,
        x: Tensor<4>,
        trace: &mut Trace,
        aux: bool,
    ) -> (Tensor<2>, Option<Tensor<2>>, Option<Tensor<2>>) {
        let x = if self.transform_input {
            // torchvision: from ImageNet mean/std normalisation to (x - 0.5) / 0.5 per channel.
            let [b, _, h, w] = x.dims();
            let ch = |c: usize, std: f32, mean: f32| {
                x.clone()
                    .narrow(1, c, 1)
                    .mul_scalar(std / 0.5)
                    .add_scalar((mean - 0.5) / 0.5)
            };
            let y = Tensor::cat(
                vec![
                    ch(0, 0.229, 0.485),
                    ch(1, 0.224, 0.456),
                    ch(2, 0.225, 0.406),
                ],
                1,
            );
            debug_assert_eq!(y.dims(), [b, 3, h, w]);
            y
        } else {
            x
        };
        let x = self.conv1.forward(x, trace, "conv1");
        let x = max_pool2d_layer(&self.pool3s2, x);
        trace.pool("maxpool1", "MaxPool 3x3 s2", 3, 2, &x);
        let x = self.conv2.forward(x, trace, "conv2");
        let x = self.conv3.forward(x, trace, "conv3");
        let x = max_pool2d_layer(&self.pool3s2, x);
        trace.pool("maxpool2", "MaxPool 3x3 s2", 3, 2, &x);
        let x = self.inception3a.forward(x, trace, "inception3a");
        let x = self.inception3b.forward(x, trace, "inception3b");
        let x = max_pool2d_layer(&self.pool3s2, x);
        trace.pool("maxpool3", "MaxPool 3x3 s2", 3, 2, &x);
        let x = self.inception4a.forward(x, trace, "inception4a");
        let a1 = match (&self.aux1, aux) {
            (Some(head), true) => Some(head.forward(x.clone())),
            _ => None,
        };
        let x = self.inception4b.forward(x, trace, "inception4b");
        let x = self.inception4c.forward(x, trace, "inception4c");
        let x = self.inception4d.forward(x, trace, "inception4d");
        let a2 = match (&self.aux2, aux) {
            (Some(head), true) => Some(head.forward(x.clone())),
            _ => None,
        };
        let x = self.inception4e.forward(x, trace, "inception4e");
        let x = max_pool2d_layer(&self.pool2s2, x);
        trace.pool("maxpool4", "MaxPool 2x2 s2", 2, 2, &x);
        let x = self.inception5a.forward(x, trace, "inception5a");
        let x = self.inception5b.forward(x, trace, "inception5b");
        let x = self.avgpool.forward(x).flatten::<2>(1, 3); // [batch, 1024]
        trace.op("avgpool", "AdaptiveAvgPool 1x1", &x);
        let x = self.fc.forward(self.dropout.forward(x));
        trace.linear("fc", &self.fc, &x);
        (x, a1, a2)
    }
}
