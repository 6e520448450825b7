//! Fully convolutional networks for semantic segmentation (Long, Shelhamer & Darrell 2015),
//! on a small VGG: five stages of 3x3 convolutions ("same" padding, ReLU), each ended by a 2x2
//! max pool, so the last feature map has stride 32 as in the paper; then `fc6` (3x3) and `fc7`
//! (1x1), the classifier made convolutional, and a 1x1 `score_fr` giving class scores on the
//! coarse grid. Up-sampling brings the scores back to the input's size, as the paper: the x2
//! steps between skips are learned (transposed convolutions initialised to bilinear
//! interpolation), the final one is fixed bilinear interpolation ("the final layer
//! deconvolutional filters are fixed to bilinear interpolation"):
//!
//! - **FCN-32s**: x32 straight from `score_fr`;
//! - **FCN-16s**: `upscore2` (x2) of `score_fr` plus `score_pool4` (1x1 on pool4, zero-initialised),
//!   then x16;
//! - **FCN-8s**: that sum up-sampled again (`upscore_pool4`, x2) plus `score_pool3`, then x8.
//!
//! (Learning the final x32 as well, a first version let FCN-32s's 64x64 kernels, 495,616
//! parameters, memorise item shapes from its 2x2 grid of scores: it then scored as well as
//! FCN-16s, which is not the architecture the paper compares.)
//!
//! Paddings make every up-sampled map align with the finer one exactly (a 64x64 input: 2x2 ->
//! 4x4 -> 8x8 -> 64x64), where the paper's Caffe nets crop after padding the input by 100.
//! Field names are the paper's Caffe layer names. Stage-by-stage training (32s, then 16s
//! initialised from it, then 8s from 16s) is [`Fcn::grown_from`].

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::blocks::conv;
use crate::error::{Error, Result};
use crate::ops::{conv2d_layer, max_pool2x2};

/// Which skips feed the up-sampled scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FcnVariant {
    /// Scores of stride 32 only.
    Fcn32s,
    /// Plus pool4 (stride 16).
    Fcn16s,
    /// Plus pool4 and pool3 (stride 8).
    Fcn8s,
}

impl FcnVariant {
    /// Stride of the finest map that feeds the scores.
    pub fn stride(self) -> usize {
        match self {
            FcnVariant::Fcn32s => 32,
            FcnVariant::Fcn16s => 16,
            FcnVariant::Fcn8s => 8,
        }
    }

    /// `FCN-32s`, `FCN-16s`, `FCN-8s`.
    pub fn label(self) -> &'static str {
        match self {
            FcnVariant::Fcn32s => "FCN-32s",
            FcnVariant::Fcn16s => "FCN-16s",
            FcnVariant::Fcn8s => "FCN-8s",
        }
    }
}

/// Configuration of an [`Fcn`].
#[derive(Config, Debug, PartialEq)]
pub struct FcnConfig {
    /// The skip variant.
    pub variant: FcnVariant,
    /// Classes, background included.
    pub num_classes: usize,
    /// Input channels (default 1: grey scenes).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output channels of the 3x3 convolutions of each of the five stages (default
    /// `[[16, 16], [32, 32], [64, 64], [128, 128], [128, 128]]`, sized for 2 CPU cores).
    #[config(
        default = "vec![vec![16, 16], vec![32, 32], vec![64, 64], vec![128, 128], vec![128, 128]]"
    )]
    pub stages: Vec<Vec<usize>>,
    /// Channels of `fc6` and `fc7` (default 256).
    #[config(default = 256)]
    pub fc_channels: usize,
}

/// One stage of the backbone: 3x3 convolutions with ReLU, then a 2x2 max pool.
#[derive(Module, Debug)]
pub struct Stage {
    /// The convolutions.
    pub convs: Vec<Conv2d>,
}

impl Stage {
    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for c in &self.convs {
            x = relu(conv2d_layer(c, x));
        }
        max_pool2x2(x)
    }
}

/// A fully convolutional network; see the module documentation.
#[derive(Module, Debug)]
pub struct Fcn {
    /// The five stages (pool1 .. pool5).
    pub stages: Vec<Stage>,
    /// 3x3 convolution on pool5 (the first fully connected layer, made convolutional).
    pub fc6: Conv2d,
    /// 1x1 convolution (the second fully connected layer).
    pub fc7: Conv2d,
    /// Class scores at stride 32.
    pub score_fr: Conv2d,
    /// Class scores from pool4 (16s, 8s).
    pub score_pool4: Option<Conv2d>,
    /// Class scores from pool3 (8s).
    pub score_pool3: Option<Conv2d>,
    /// x2 up-sampling of the stride-32 scores (16s, 8s).
    pub upscore2: Option<ConvTranspose2d>,
    /// x2 up-sampling of the fused stride-16 scores (8s).
    pub upscore_pool4: Option<ConvTranspose2d>,
    /// Classes, background included.
    pub num_classes: usize,
    /// Factor of the final, fixed bilinear up-sampling (32, 16 or 8).
    pub final_stride: usize,
}

/// Fixed bilinear up-sampling of every channel of `x` by `factor`: a transposed convolution
/// with FCN's bilinear kernel (`2·factor` wide), one group per channel.
pub fn bilinear_upsample(x: Tensor<4>, factor: usize) -> Tensor<4> {
    let c = x.dims()[1];
    let k = 2 * factor;
    let one = bilinear_weights(1, k);
    let weights: Vec<f32> = (0..c).flat_map(|_| one.iter().copied()).collect();
    let w = Tensor::from_data(TensorData::new(weights, [c, 1, k, k]), &x.device());
    burn::tensor::module::conv_transpose2d(
        x,
        w,
        None,
        burn::tensor::ops::ConvTransposeOptions::new(
            [factor, factor],
            [factor / 2, factor / 2],
            [0, 0],
            [1, 1],
            c,
        ),
    )
}

/// Weights `[C, C, k, k]` of a transposed convolution that up-samples each channel by bilinear
/// interpolation (FCN's `upsample_filt`): channel `c` to channel `c` only.
pub fn bilinear_weights(channels: usize, kernel: usize) -> Vec<f32> {
    let factor = kernel.div_ceil(2) as f64;
    let center = if kernel % 2 == 1 {
        factor - 1.0
    } else {
        factor - 0.5
    };
    let tap = |i: usize| 1.0 - (i as f64 - center).abs() / factor;
    let mut w = vec![0f32; channels * channels * kernel * kernel];
    for c in 0..channels {
        for y in 0..kernel {
            for x in 0..kernel {
                w[((c * channels + c) * kernel + y) * kernel + x] = (tap(y) * tap(x)) as f32;
            }
        }
    }
    w
}

/// A transposed convolution up-sampling by `factor` (kernel `2·factor`, padding `factor/2`),
/// initialised to bilinear interpolation, zero bias.
pub fn upsample(channels: usize, factor: usize, device: &Device) -> ConvTranspose2d {
    let k = 2 * factor;
    let mut layer = ConvTranspose2dConfig::new([channels, channels], [k, k])
        .with_stride([factor, factor])
        .with_padding([factor / 2, factor / 2])
        .init(device);
    layer.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(bilinear_weights(channels, k), [channels, channels, k, k]),
        device,
    ));
    layer.bias = Some(Param::from_tensor(Tensor::zeros([channels], device)));
    layer
}

/// A `k×k` convolution, stride 1, "same" padding, initialised as torchvision's VGG (He et al.
/// 2015: normal with standard deviation `√(2 / fan_out)`, zero bias). With PyTorch's default
/// initialisation instead, the signal shrinks about √6-fold a layer: after the 12 layers of
/// the backbone the scores are the biases, whatever the image, and training crawls.
fn he_conv(channels: [usize; 2], k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    let mut c = Conv2dConfig::new(channels, [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device);
    c.bias = Some(Param::from_tensor(Tensor::zeros([channels[1]], device)));
    c
}

/// A 1x1 score layer initialised to zero (the paper's skips start as no-ops).
fn zero_score(inputs: usize, classes: usize, device: &Device) -> Conv2d {
    let mut c = conv([inputs, classes], 1, 1, 0, true, device);
    c.weight = Param::from_tensor(Tensor::zeros([classes, inputs, 1, 1], device));
    c.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
    c
}

impl FcnConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        if self.stages.len() != 5 || self.stages.iter().any(|s| s.is_empty() || s.contains(&0)) {
            return Err(Error::invalid(
                "stages",
                "an FCN backbone has five stages of at least one convolution each, with non-zero channels",
            ));
        }
        if !(2..=256).contains(&self.num_classes) || self.fc_channels == 0 || self.in_channels == 0
        {
            return Err(Error::invalid(
                "num_classes",
                format!("{}: 2 to 256 classes", self.num_classes),
            ));
        }
        Ok(())
    }

    /// The network: convolutions with He initialisation, skip scores at zero,
    /// up-sampling bilinear.
    pub fn init(&self, device: &Device) -> Fcn {
        let n = self.num_classes;
        let mut cin = self.in_channels;
        let stages = self
            .stages
            .iter()
            .map(|widths| Stage {
                convs: widths
                    .iter()
                    .map(|&w| {
                        let c = he_conv([cin, w], 3, device);
                        cin = w;
                        c
                    })
                    .collect(),
            })
            .collect();
        let out = |k: usize| *self.stages[k].last().expect("validated: non-empty");
        let fc = self.fc_channels;
        let skip16 = self.variant != FcnVariant::Fcn32s;
        let skip8 = self.variant == FcnVariant::Fcn8s;
        Fcn {
            stages,
            fc6: he_conv([out(4), fc], 3, device),
            fc7: he_conv([fc, fc], 1, device),
            score_fr: he_conv([fc, n], 1, device),
            score_pool4: skip16.then(|| zero_score(out(3), n, device)),
            score_pool3: skip8.then(|| zero_score(out(2), n, device)),
            upscore2: skip16.then(|| upsample(n, 2, device)),
            upscore_pool4: skip8.then(|| upsample(n, 2, device)),
            num_classes: n,
            final_stride: self.variant.stride(),
        }
    }
}

impl Fcn {
    /// Class scores `[B, classes, H, W]` of images `[B, C, H, W]` (`H`, `W` multiples of 32).
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        if h == 0 || w == 0 || h % 32 != 0 || w % 32 != 0 {
            return Err(Error::invalid(
                "image",
                format!("{h}x{w}: an FCN of stride 32 takes sides that are multiples of 32"),
            ));
        }
        let pool3 = self.stages[..3].iter().fold(x, |x, s| s.forward(x)); // [B, C3, H/8, W/8]
        let pool4 = self.stages[3].forward(pool3.clone()); // [B, C4, H/16, W/16]
        let pool5 = self.stages[4].forward(pool4.clone()); // [B, C5, H/32, W/32]
        let fc7 = relu(conv2d_layer(
            &self.fc7,
            relu(conv2d_layer(&self.fc6, pool5)),
        ));
        let mut score = conv2d_layer(&self.score_fr, fc7); // [B, n, H/32, W/32]
        if let (Some(up), Some(skip)) = (&self.upscore2, &self.score_pool4) {
            score = up.forward(score) + conv2d_layer(skip, pool4); // [B, n, H/16, W/16]
        }
        if let (Some(up), Some(skip)) = (&self.upscore_pool4, &self.score_pool3) {
            score = up.forward(score) + conv2d_layer(skip, pool3); // [B, n, H/8, W/8]
        }
        Ok(bilinear_upsample(score, self.final_stride)) // [B, n, H, W]
    }

    /// The variant this network is.
    pub fn variant(&self) -> FcnVariant {
        match (&self.score_pool4, &self.score_pool3) {
            (Some(_), Some(_)) => FcnVariant::Fcn8s,
            (Some(_), None) => FcnVariant::Fcn16s,
            _ => FcnVariant::Fcn32s,
        }
    }

    /// Stage-by-stage training: `self` (a freshly initialised finer variant) takes every layer
    /// `coarser` has; the new skip scores stay at zero and the new x2 up-sampling bilinear, so
    /// the grown network starts with the coarser one's scores, up to the final interpolation.
    pub fn grown_from(mut self, coarser: Fcn) -> Result<Fcn> {
        if coarser.variant().stride() <= self.variant().stride()
            || coarser.num_classes != self.num_classes
        {
            return Err(Error::invalid(
                "init_from",
                format!(
                    "{} ({} classes) cannot grow into {} ({} classes): each stage starts from the coarser one (32s -> 16s -> 8s)",
                    coarser.variant().label(),
                    coarser.num_classes,
                    self.variant().label(),
                    self.num_classes
                ),
            ));
        }
        let shapes = |f: &Fcn| {
            f.stages
                .iter()
                .flat_map(|s| s.convs.iter().map(|c| c.weight.dims()))
                .collect::<Vec<_>>()
        };
        if shapes(&self) != shapes(&coarser) || self.fc6.weight.dims() != coarser.fc6.weight.dims()
        {
            return Err(Error::invalid(
                "init_from",
                "the coarser network's backbone has other layer sizes",
            ));
        }
        self.stages = coarser.stages;
        self.fc6 = coarser.fc6;
        self.fc7 = coarser.fc7;
        self.score_fr = coarser.score_fr;
        if coarser.score_pool4.is_some() {
            self.score_pool4 = coarser.score_pool4;
            self.upscore2 = coarser.upscore2;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn small(variant: FcnVariant) -> FcnConfig {
        FcnConfig::new(variant, 3)
            .with_stages(vec![vec![4]; 5])
            .with_fc_channels(8)
    }

    #[test]
    fn bilinear_upsampling_interpolates() {
        // x2 of a ramp is a finer ramp inside (edges see the zero padding).
        let device = Device::flex();
        let up = upsample(1, 2, &device);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0f32, 1.0, 2.0, 3.0], [1, 1, 1, 4]),
            &device,
        );
        let x = x.repeat_dim(2, 4); // [1, 1, 4, 4], rows equal
        let y = up.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y.len(), 64);
        // Row 4 (interior): 0.25-spaced values between the input columns.
        let row: Vec<f32> = y[4 * 8..5 * 8].to_vec();
        for (k, want) in [
            (1, 0.25f32),
            (2, 0.75),
            (3, 1.25),
            (4, 1.75),
            (5, 2.25),
            (6, 2.75),
        ] {
            assert!((row[k] - want).abs() < 1e-6, "{row:?}");
        }
        // Kernel 4 stride 2: weights of FCN's upsample_filt(4) = outer([.25 .75 .75 .25]).
        let w = bilinear_weights(1, 4);
        assert!((w[0] - 0.0625).abs() < 1e-7 && (w[5] - 0.5625).abs() < 1e-7);
        // Channels do not mix.
        let w2 = bilinear_weights(2, 4);
        assert!(w2[16..32].iter().all(|&v| v == 0.0));
        // The fixed up-sampling equals the bilinear transposed convolution, channel by channel.
        let x2 = Tensor::<4>::from_data(
            TensorData::new((0..32).map(|v| v as f32).collect::<Vec<_>>(), [1, 2, 4, 4]),
            &device,
        );
        let fixed = bilinear_upsample(x2.clone(), 2);
        let learned = upsample(2, 2, &device).forward(x2);
        assert!((fixed - learned).abs().max().into_scalar::<f32>() < 1e-5);
    }

    #[test]
    fn every_variant_scores_every_pixel_and_grows_exactly() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 1, 64, 64], Distribution::Uniform(0.0, 1.0), &device);
        let net32 = small(FcnVariant::Fcn32s).init(&device);
        let y32 = net32.forward(x.clone()).unwrap();
        assert_eq!(y32.dims(), [2, 3, 64, 64]);
        // The default network's scores depend on the input (the tiny one's ReLUs may all be
        // dead at initialisation, leaving only biases).
        let full = FcnConfig::new(FcnVariant::Fcn8s, 3).init(&device);
        let a = full.forward(x.clone()).unwrap();
        let b = full.forward(x.clone().flip([3])).unwrap();
        assert!((a - b).abs().max().into_scalar::<f32>() > 1e-6);
        // 16s grown from 32s: the skip starts at zero, so its stride-16 scores are the
        // up-sampled stride-32 ones; the network runs and holds 32s's backbone.
        let net16 = small(FcnVariant::Fcn16s)
            .init(&device)
            .grown_from(net32)
            .unwrap();
        assert_eq!(net16.variant(), FcnVariant::Fcn16s);
        let y16 = net16.forward(x.clone()).unwrap();
        assert_eq!(y16.dims(), [2, 3, 64, 64]);
        let net8 = small(FcnVariant::Fcn8s)
            .init(&device)
            .grown_from(net16)
            .unwrap();
        assert_eq!(net8.forward(x.clone()).unwrap().dims(), [2, 3, 64, 64]);
        assert_eq!(net8.variant(), FcnVariant::Fcn8s);
        // Growing backwards is refused.
        let net32b = small(FcnVariant::Fcn32s).init(&device);
        assert!(net32b.grown_from(net8).is_err());
        // Sides that are not multiples of 32 are refused.
        let bad = Tensor::<4>::zeros([1, 1, 48, 64], &device);
        assert!(small(FcnVariant::Fcn8s).init(&device).forward(bad).is_err());
    }
}
