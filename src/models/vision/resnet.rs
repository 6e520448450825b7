//! ResNet (He et al. 2016): residual blocks `y = relu(F(x) + shortcut(x))`, so a block only has
//! to learn the residual `F`, and the identity path carries the gradient through deep stacks.
//!
//! - [`BasicBlock`] (ResNet-18/34): two 3×3 convolutions.
//! - [`Bottleneck`] (ResNet-50/101/152): 1×1 reduce, 3×3, 1×1 expand ×4; torchvision's "V1.5"
//!   puts the stride on the 3×3.
//! - ImageNet stem: 7×7/2 convolution, batch norm, ReLU, 3×3/2 max pool; four stages of 64, 128,
//!   256, 512 (×4 for bottlenecks) channels; global average pool; one linear layer.
//! - CIFAR-style small networks (section 4.2 of the paper): `resnet20/32/56` = 6n + 2 layers,
//!   3×3 stem with 16 channels, three stages of n basic blocks with 16, 32, 64 channels, and
//!   parameter-free shortcuts (option A: subsample and pad channels with zeros).
//!
//! Field names are torchvision's (`conv1`, `bn1`, `layer1.0.conv2`, `fc`), except the
//! shortcut projection: torchvision's `downsample.0` / `downsample.1` are `downsample.conv` /
//! `downsample.bn` here.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;

use super::blocks::{bn, conv, linear, max_pool};
use super::summary::Trace;
use crate::ops::{
    add_relu, batch_norm_layer, batch_norm_relu_layer, conv2d_layer, max_pool2d_layer,
};

/// The projection shortcut: 1×1 convolution with the block's stride, then batch norm.
#[derive(Module, Debug)]
pub struct Downsample {
    /// torchvision `downsample.0`.
    pub conv: Conv2d,
    /// torchvision `downsample.1`.
    pub bn: BatchNorm,
}

impl Downsample {
    fn new(channels: [usize; 2], stride: usize, device: &Device) -> Self {
        Downsample {
            conv: conv(channels, 1, stride, 0, false, device),
            bn: bn(channels[1], 1e-5, device),
        }
    }

    fn forward(&self, x: Tensor<4>, trace: &mut Trace, prefix: &str) -> Tensor<4> {
        let y = conv2d_layer(&self.conv, x);
        trace.conv(&format!("{prefix}.downsample.conv"), &self.conv, &y);
        let y = batch_norm_layer(&self.bn, y);
        trace.bn(&format!("{prefix}.downsample.bn"), &self.bn, &y);
        y
    }
}

/// Two 3×3 convolutions: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3, stride `s`.
    pub conv1: Conv2d,
    /// After `conv1`.
    pub bn1: BatchNorm,
    /// 3×3.
    pub conv2: Conv2d,
    /// After `conv2`.
    pub bn2: BatchNorm,
    /// Projection shortcut when the shape changes (ImageNet ResNets).
    pub downsample: Option<Downsample>,
    /// Option-A shortcut (CIFAR ResNets): channels of zeros added on each side.
    pad_channels: usize,
    subsample: Option<MaxPool2d>,
}

/// 1×1 reduce, 3×3 (stride here, "V1.5"), 1×1 expand ×4, then the shortcut.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1, `in -> planes`.
    pub conv1: Conv2d,
    /// After `conv1`.
    pub bn1: BatchNorm,
    /// 3×3, stride `s`.
    pub conv2: Conv2d,
    /// After `conv2`.
    pub bn2: BatchNorm,
    /// 1×1, `planes -> 4·planes`.
    pub conv3: Conv2d,
    /// After `conv3`.
    pub bn3: BatchNorm,
    /// Projection shortcut when the shape changes.
    pub downsample: Option<Downsample>,
}

/// A residual block type.
pub trait ResidualBlock: Module + Clone + std::fmt::Debug + Send + 'static {
    /// Output channels per `planes`.
    const EXPANSION: usize;
    /// A block `in_planes -> planes · EXPANSION` with stride `stride` and a projection
    /// shortcut where the shape changes.
    fn new(in_planes: usize, planes: usize, stride: usize, device: &Device) -> Self;
    /// `x -> relu(F(x) + shortcut(x))`, recording into `trace` under `prefix`.
    fn forward(&self, x: Tensor<4>, trace: &mut Trace, prefix: &str) -> Tensor<4>;
}

impl ResidualBlock for BasicBlock {
    const EXPANSION: usize = 1;

    fn new(in_planes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        BasicBlock {
            conv1: conv([in_planes, planes], 3, stride, 1, false, device),
            bn1: bn(planes, 1e-5, device),
            conv2: conv([planes, planes], 3, 1, 1, false, device),
            bn2: bn(planes, 1e-5, device),
            downsample: (stride != 1 || in_planes != planes)
                .then(|| Downsample::new([in_planes, planes], stride, device)),
            pad_channels: 0,
            subsample: None,
        }
    }

    fn forward(&self, x: Tensor<4>, trace: &mut Trace, prefix: &str) -> Tensor<4> {
        let entry = trace.geometry();
        let y = conv2d_layer(&self.conv1, x.clone());
        trace.conv(&format!("{prefix}.conv1"), &self.conv1, &y);
        let y = batch_norm_relu_layer(&self.bn1, y);
        trace.bn(&format!("{prefix}.bn1"), &self.bn1, &y);
        let y = conv2d_layer(&self.conv2, y);
        trace.conv(&format!("{prefix}.conv2"), &self.conv2, &y);
        let y = batch_norm_layer(&self.bn2, y);
        trace.bn(&format!("{prefix}.bn2"), &self.bn2, &y);
        // The shortcut starts from the block's input; the main path sees more.
        let main = trace.geometry();
        trace.set_geometry(entry);
        let shortcut = match (&self.downsample, &self.subsample) {
            (Some(d), _) => d.forward(x, trace, prefix),
            (None, Some(pool)) => {
                // Option A: every other pixel, channels padded with zeros on both sides.
                let s = max_pool2d_layer(pool, x); // [batch, in, H/2, W/2]
                let [b, _, h, w] = s.dims();
                let zeros = Tensor::<4>::zeros([b, self.pad_channels, h, w], &s.device());
                Tensor::cat(vec![zeros.clone(), s, zeros], 1) // [batch, out, H/2, W/2]
            }
            (None, None) => x,
        };
        trace.set_geometry(main.max(trace.geometry()));
        add_relu(y, shortcut)
    }
}

impl BasicBlock {
    /// A block with the CIFAR networks' parameter-free shortcut (option A).
    fn option_a(in_planes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let mut b = <BasicBlock as ResidualBlock>::new(in_planes, planes, 1, device);
        b.conv1 = conv([in_planes, planes], 3, stride, 1, false, device);
        b.downsample = None;
        if stride != 1 || in_planes != planes {
            b.pad_channels = (planes - in_planes) / 2;
            b.subsample = Some(max_pool(1, stride, 0, false));
        }
        b
    }
}

impl ResidualBlock for Bottleneck {
    const EXPANSION: usize = 4;

    fn new(in_planes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out = planes * Self::EXPANSION;
        Bottleneck {
            conv1: conv([in_planes, planes], 1, 1, 0, false, device),
            bn1: bn(planes, 1e-5, device),
            conv2: conv([planes, planes], 3, stride, 1, false, device),
            bn2: bn(planes, 1e-5, device),
            conv3: conv([planes, out], 1, 1, 0, false, device),
            bn3: bn(out, 1e-5, device),
            downsample: (stride != 1 || in_planes != out)
                .then(|| Downsample::new([in_planes, out], stride, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, trace: &mut Trace, prefix: &str) -> Tensor<4> {
        let entry = trace.geometry();
        let y = conv2d_layer(&self.conv1, x.clone());
        trace.conv(&format!("{prefix}.conv1"), &self.conv1, &y);
        let y = batch_norm_relu_layer(&self.bn1, y);
        trace.bn(&format!("{prefix}.bn1"), &self.bn1, &y);
        let y = conv2d_layer(&self.conv2, y);
        trace.conv(&format!("{prefix}.conv2"), &self.conv2, &y);
        let y = batch_norm_relu_layer(&self.bn2, y);
        trace.bn(&format!("{prefix}.bn2"), &self.bn2, &y);
        let y = conv2d_layer(&self.conv3, y);
        trace.conv(&format!("{prefix}.conv3"), &self.conv3, &y);
        let y = batch_norm_layer(&self.bn3, y);
        trace.bn(&format!("{prefix}.bn3"), &self.bn3, &y);
        let main = trace.geometry();
        trace.set_geometry(entry);
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x, trace, prefix),
            None => x,
        };
        trace.set_geometry(main.max(trace.geometry()));
        add_relu(y, shortcut)
    }
}

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet-18; three entries for the CIFAR form).
    pub blocks: Vec<usize>,
    /// Classes (default 1000).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels (default 3).
    #[config(default = 3)]
    pub in_channels: usize,
    /// The CIFAR form (3×3 stem with 16 channels, no max pool, stages of 16/32/64, option-A
    /// shortcuts) instead of the ImageNet one (default false).
    #[config(default = false)]
    pub cifar: bool,
}

/// ResNet over blocks `B`; see the module documentation.
#[derive(Module, Debug)]
pub struct ResNet<B: ResidualBlock> {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// Stage 1.
    pub layer1: Vec<B>,
    /// Stage 2.
    pub layer2: Vec<B>,
    /// Stage 3.
    pub layer3: Vec<B>,
    /// Stage 4 (empty in the CIFAR form).
    pub layer4: Vec<B>,
    /// The classifier.
    pub fc: Linear,
    maxpool: Option<MaxPool2d>,
    avgpool: AdaptiveAvgPool2d,
}

impl ResNetConfig {
    /// ResNet-`depth` for ImageNet (18, 34: basic blocks; 50, 101, 152: bottlenecks), or
    /// `None` for another depth.
    pub fn imagenet(depth: usize, num_classes: usize) -> Option<Self> {
        let blocks = match depth {
            18 => vec![2, 2, 2, 2],
            34 | 50 => vec![3, 4, 6, 3],
            101 => vec![3, 4, 23, 3],
            152 => vec![3, 8, 36, 3],
            _ => return None,
        };
        Some(ResNetConfig::new(blocks).with_num_classes(num_classes))
    }

    /// The CIFAR ResNet with `6n + 2` layers (20, 32, 44, 56, 110, ...), or `None` when `depth`
    /// is not of that form.
    pub fn cifar(depth: usize, num_classes: usize, in_channels: usize) -> Option<Self> {
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            return None;
        }
        let n = (depth - 2) / 6;
        Some(
            ResNetConfig::new(vec![n, n, n])
                .with_num_classes(num_classes)
                .with_in_channels(in_channels)
                .with_cifar(true),
        )
    }

    /// Builds the network over block type `B` (the CIFAR form needs [`BasicBlock`]).
    pub fn init<B: ResidualBlock>(&self, device: &Device) -> ResNet<B> {
        let widths: &[usize] = if self.cifar {
            &[16, 32, 64]
        } else {
            &[64, 128, 256, 512]
        };
        let stem = widths[0];
        let mut in_planes = stem;
        let mut stages: Vec<Vec<B>> = Vec::new();
        for (s, (&planes, &n)) in widths.iter().zip(&self.blocks).enumerate() {
            let stride = if s == 0 { 1 } else { 2 };
            let mut stage = Vec::with_capacity(n);
            for i in 0..n {
                let st = if i == 0 { stride } else { 1 };
                stage.push(if self.cifar {
                    cifar_block::<B>(in_planes, planes, st, device)
                } else {
                    B::new(in_planes, planes, st, device)
                });
                in_planes = planes * B::EXPANSION;
            }
            stages.push(stage);
        }
        stages.resize_with(4, Vec::new);
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        ResNet {
            conv1: if self.cifar {
                conv([self.in_channels, stem], 3, 1, 1, false, device)
            } else {
                conv([self.in_channels, stem], 7, 2, 3, false, device)
            },
            bn1: bn(stem, 1e-5, device),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            fc: linear(in_planes, self.num_classes, device),
            maxpool: (!self.cifar).then(|| max_pool(3, 2, 1, false)),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        }
    }
}

/// An option-A basic block as a `B` (the CIFAR form is only built over [`BasicBlock`]).
fn cifar_block<B: ResidualBlock>(
    in_planes: usize,
    planes: usize,
    stride: usize,
    device: &Device,
) -> B {
    let block = BasicBlock::option_a(in_planes, planes, stride, device);
    let any: Box<dyn std::any::Any> = Box::new(block);
    match any.downcast::<B>() {
        Ok(b) => *b,
        // Bottleneck CIFAR nets are not a configuration of the paper: fall back to B's own.
        Err(_) => B::new(in_planes, planes, stride, device),
    }
}

impl<B: ResidualBlock> ResNet<B> {
    /// The torchvision key of the parameter at burn path `path`.
    pub fn torch_key(&self, path: &str) -> String {
        crate::weights::torchvision::default_torch_key(path)
    }

    /// `[batch, C, H, W]` -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording every layer into `trace`.
    pub fn forward_traced(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let x = conv2d_layer(&self.conv1, x);
        trace.conv("conv1", &self.conv1, &x);
        let mut x = batch_norm_relu_layer(&self.bn1, x);
        trace.bn("bn1", &self.bn1, &x);
        if let Some(pool) = &self.maxpool {
            x = max_pool2d_layer(pool, x);
            trace.pool("maxpool", "MaxPool 3x3 s2", 3, 2, &x);
        }
        for (name, stage) in [
            ("layer1", &self.layer1),
            ("layer2", &self.layer2),
            ("layer3", &self.layer3),
            ("layer4", &self.layer4),
        ] {
            for (i, block) in stage.iter().enumerate() {
                let prefix = format!("{name}.{i}");
                x = block.forward(x, trace, &prefix);
                trace.feature_map(&prefix, &x);
            }
        }
        let x = self.avgpool.forward(x).flatten::<2>(1, 3); // [batch, channels]
        trace.op("avgpool", "AdaptiveAvgPool 1x1", &x);
        let x = self.fc.forward(x);
        trace.linear("fc", &self.fc, &x);
        x
    }
}
