//! Recurrent instance segmentation (Romera-Paredes & Torr 2016, "Recurrent Instance
//! Segmentation"): a CNN encodes the image once; a ConvLSTM reads that encoding at every step
//! and, step by step, emits one instance's mask and a confidence that an instance is left to
//! segment. Its state remembers which objects it has already segmented, so it can count.
//!
//! - Encoder: three 3x3 convolutions with ReLU and two 2x2 max pools, 64x64 -> `features` maps
//!   of 16x16, then two dilated 3x3 convolutions (dilation 2 and 4, a residual sum) so each
//!   cell sees most of the scene (He initialisation, as [`crate::models::vision::fcn`]).
//! - Recurrence: a [`ConvLstm`] over `max_steps` steps, reading at each the encoding, two
//!   coordinate maps (x, y in [-1, 1]) and a *canvas*: the largest mask probability of the
//!   steps so far, averaged over 4x4 blocks (16x16).
//! - **Where to look** (a spatial soft attention, as Ren & Zemel 2017 add to this paper): a 1x1
//!   convolution of `h_t` scores each cell, `α_t = softmax(score_t)` over the 256 cells, and
//!   the step reads `r_t = Σ_ij α_t,ij [e_ij; x_ij; y_ij]`, the features and the place it
//!   looks at.
//! - Outputs of step `t`: mask logits from a decoder that sees, at each cell, `h_t`, the
//!   cell's features times the features read (`e ⊙ r_e`: "looks like what I look at"), its
//!   offset from the place read and the squared distance; a 1x1 score at 16x16, then two
//!   learned x2 up-samplings (bilinear at first), each corrected by a 3x3 convolution of the
//!   encoder's maps at that size with the up-sampled mask (FCN's skips, conditioned on the
//!   step's mask); and the confidence logit `s_t`, a linear map of `h_t` averaged and maxed
//!   over space.
//!
//! Why the attention: the paper's network (encoding only, or with the canvas) emitted at
//! every step the union of all items, its matched soft IoU stalling at 0.39
//! (docs/instances-scenes/, earlier version): a network of local convolutions treats every
//! item alike and has no way to pick one. A softmax over cells picks one place; features and
//! offsets relative to it pick that place's item.
//!
//! The matching loss that trains it is in [`crate::tasks::instances`].

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};

use crate::error::{Error, Result};
use crate::models::vision::fcn::upsample;
use crate::ops::{conv2d_layer, max_pool2x2};
use crate::recurrent::{ConvLstm, ConvLstmConfig};

/// Side of the grid the recurrence runs on.
const GRID: usize = 16;

/// Channels of the encoder's maps at 64x64 and 32x32.
const EARLY: usize = 32;

/// Configuration of an [`InstanceSegmenter`].
#[derive(Config, Debug, PartialEq)]
pub struct InstanceSegmenterConfig {
    /// Channels of the encoder's output (default 64).
    #[config(default = 64)]
    pub features: usize,
    /// Channels of the ConvLSTM state (default 32).
    #[config(default = 32)]
    pub hidden: usize,
    /// Steps: the most instances found in one image, plus one to say "done" (default 5).
    #[config(default = 5)]
    pub max_steps: usize,
    /// Channels of the mask decoder at 16x16 (default 32).
    #[config(default = 32)]
    pub decoder: usize,
}

/// The network; see the module documentation.
#[derive(Module, Debug)]
pub struct InstanceSegmenter {
    /// 3x3, 1 -> 32, at 64x64 (then pool).
    pub enc1: Conv2d,
    /// 3x3, 32 -> 32, at 32x32 (then pool).
    pub enc2: Conv2d,
    /// 3x3, 32 -> features, at 16x16.
    pub enc3: Conv2d,
    /// 3x3 dilated 2, features -> features, at 16x16.
    pub enc4: Conv2d,
    /// 3x3 dilated 4, features -> features, at 16x16 (added to `enc3`'s output).
    pub enc5: Conv2d,
    /// The recurrence.
    pub rnn: ConvLstm,
    /// 1x1, hidden -> 1: where the step looks.
    pub look: Conv2d,
    /// 3x3, hidden + features + 3 -> decoder: the step's mask features at 16x16.
    pub decode: Conv2d,
    /// 1x1, decoder -> 1: the step's mask logits at 16x16.
    pub mask: Conv2d,
    /// x2 up-sampling, 16 -> 32 (bilinear at first).
    pub up32: ConvTranspose2d,
    /// 3x3, 32 + 1 -> 1: the correction at 32x32 from the encoder's maps and the mask.
    pub refine32: Conv2d,
    /// x2 up-sampling, 32 -> 64 (bilinear at first).
    pub up64: ConvTranspose2d,
    /// 3x3, 32 + 1 -> 1: the correction at 64x64.
    pub refine64: Conv2d,
    /// Confidence logit from the state averaged and maxed over space.
    pub confidence: Linear,
    /// Steps.
    pub max_steps: usize,
}

fn he_conv(channels: [usize; 2], k: usize, dilation: usize, device: &Device) -> Conv2d {
    let p = dilation * (k / 2);
    let mut c = Conv2dConfig::new(channels, [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_dilation([dilation, dilation])
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device);
    c.bias = Some(Param::from_tensor(Tensor::zeros([channels[1]], device)));
    c
}

impl InstanceSegmenterConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        for (what, v, max) in [
            ("features", self.features, 1024),
            ("hidden", self.hidden, 1024),
            ("max_steps", self.max_steps, 32),
            ("decoder", self.decoder, 1024),
        ] {
            if v == 0 || v > max {
                return Err(Error::invalid(what, format!("{v}: must be 1 to {max}")));
            }
        }
        Ok(())
    }

    /// The network.
    pub fn init(&self, device: &Device) -> InstanceSegmenter {
        let (f, hc) = (self.features, self.hidden);
        InstanceSegmenter {
            enc1: he_conv([1, EARLY], 3, 1, device),
            enc2: he_conv([EARLY, EARLY], 3, 1, device),
            enc3: he_conv([EARLY, f], 3, 1, device),
            enc4: he_conv([f, f], 3, 2, device),
            enc5: he_conv([f, f], 3, 4, device),
            rnn: ConvLstmConfig::new(f + 3, hc, 3).init(device),
            look: Conv2dConfig::new([hc, 1], [1, 1]).init(device),
            decode: he_conv([hc + f + 3, self.decoder], 3, 1, device),
            mask: Conv2dConfig::new([self.decoder, 1], [1, 1]).init(device),
            up32: upsample(1, 2, device),
            refine32: he_conv([EARLY + 1, 1], 3, 1, device),
            up64: upsample(1, 2, device),
            refine64: he_conv([EARLY + 1, 1], 3, 1, device),
            confidence: LinearConfig::new(2 * hc, 1).init(device),
            max_steps: self.max_steps,
        }
    }
}

/// Coordinate maps `[b, 2, side, side]`: x then y, each from -1 to 1.
fn coordinates(b: usize, side: usize, device: &Device) -> Tensor<4> {
    let at = |i: usize| 2.0 * i as f32 / (side - 1) as f32 - 1.0;
    let mut v = Vec::with_capacity(2 * side * side);
    v.extend((0..side * side).map(|i| at(i % side)));
    v.extend((0..side * side).map(|i| at(i / side)));
    Tensor::<3>::from_data(TensorData::new(v, [2, side, side]), device)
        .unsqueeze::<4>()
        .expand([b, 2, side, side])
}

/// What an [`InstanceSegmenter`] emits for a batch, `T = max_steps` steps.
#[derive(Debug, Clone)]
pub struct InstanceSteps {
    /// Mask logits, `[B, T, 64, 64]`.
    pub masks: Tensor<4>,
    /// Confidence logits, `[B, T]`.
    pub confidence: Tensor<2>,
    /// Where each step looked: the softmax over the 16x16 cells, `[B, T, 256]`.
    pub attention: Tensor<3>,
}

impl InstanceSegmenter {
    /// `images [B, 1, 64, 64]` (intensities in [0, 1]) -> the steps' masks, confidences and
    /// attention.
    pub fn forward(&self, images: Tensor<4>) -> Result<InstanceSteps> {
        let [b, c, h, w] = images.dims();
        if c != 1 || h != 64 || w != 64 || b == 0 {
            return Err(Error::invalid(
                "image",
                format!(
                    "shape {:?}; the network reads [batch, 1, 64, 64]",
                    images.dims()
                ),
            ));
        }
        let (t, g, cells) = (self.max_steps, GRID, GRID * GRID);
        let e1 = relu(conv2d_layer(&self.enc1, images)); // [B, 32, 64, 64]
        let e2 = relu(conv2d_layer(&self.enc2, max_pool2x2(e1.clone()))); // [B, 32, 32, 32]
        let e3 = relu(conv2d_layer(&self.enc3, max_pool2x2(e2.clone()))); // [B, F, 16, 16]
        let wide = relu(self.enc5.forward(relu(self.enc4.forward(e3.clone())))); // [B, F, 16, 16]
        let e = e3 + wide; // [B, F, 16, 16]
        let f = e.dims()[1];
        let device = e.device();
        let xy = coordinates(b, g, &device); // [B, 2, 16, 16]
        let keys = Tensor::cat(vec![e.clone(), xy.clone()], 1).reshape([b, f + 2, cells]); // [B, F+2, 256]
        let mut canvas = Tensor::<4>::zeros([b, 1, g, g], &device);
        let mut state = None;
        let (mut masks, mut confidences) = (Vec::with_capacity(t), Vec::with_capacity(t));
        let mut attention = Vec::with_capacity(t);
        for _ in 0..t {
            let input =
                Tensor::cat(vec![e.clone(), xy.clone(), canvas.clone()], 1).unsqueeze_dim::<5>(1); // [B, 1, F+3, 16, 16]
            let (hidden, next) = self.rnn.forward(input, state)?; // [B, 1, Hc, 16, 16]
            state = Some(next);
            let hc = hidden.dims()[2];
            let h = hidden.reshape([b, hc, g, g]); // [B, Hc, 16, 16]

            // Where to look, and what is there.
            let score = conv2d_layer(&self.look, h.clone()).reshape([b, cells]); // [B, 256]
            let alpha = softmax(score, 1); // [B, 256]
            attention.push(alpha.clone().reshape([b, 1, cells]));
            let read = keys.clone().matmul(alpha.reshape([b, cells, 1])); // [B, F+2, 1]
            let read_features = read.clone().narrow(1, 0, f).reshape([b, f, 1, 1]);
            let read_place = read.narrow(1, f, 2).reshape([b, 2, 1, 1]);
            let alike = e.clone() * read_features; // [B, F, 16, 16]
            let offset = xy.clone() - read_place; // [B, 2, 16, 16]
            let distance = offset.clone().powi_scalar(2).sum_dim(1); // [B, 1, 16, 16]

            // The step's mask: coarse, then refined at 32x32 and 64x64.
            let d = relu(conv2d_layer(
                &self.decode,
                Tensor::cat(vec![h.clone(), alike, offset, distance], 1),
            )); // [B, D, 16, 16]
            let m16 = conv2d_layer(&self.mask, d); // [B, 1, 16, 16]
            let m32 = self.up32.forward(m16); // [B, 1, 32, 32]
            let m32 =
                m32.clone() + conv2d_layer(&self.refine32, Tensor::cat(vec![e2.clone(), m32], 1));
            let m64 = self.up64.forward(m32); // [B, 1, 64, 64]
            let mask =
                m64.clone() + conv2d_layer(&self.refine64, Tensor::cat(vec![e1.clone(), m64], 1)); // [B, 1, 64, 64]

            // The canvas: what the steps so far have covered, averaged over 4x4 blocks.
            let covered = sigmoid(mask.clone())
                .reshape([b, g, 4, g, 4])
                .mean_dim(4)
                .mean_dim(2)
                .reshape([b, 1, g, g]);
            canvas = canvas.max_pair(covered);
            let pooled = Tensor::cat(
                vec![
                    h.clone().mean_dim(3).mean_dim(2).reshape([b, hc]),
                    h.max_dim(3).max_dim(2).reshape([b, hc]),
                ],
                1,
            ); // [B, 2·Hc]
            masks.push(mask);
            confidences.push(self.confidence.forward(pooled)); // [B, 1]
        }
        Ok(InstanceSteps {
            masks: Tensor::cat(masks, 1),            // [B, T, 64, 64]
            confidence: Tensor::cat(confidences, 1), // [B, T]
            attention: Tensor::cat(attention, 1),    // [B, T, 256]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn one_mask_and_one_confidence_per_step_depending_on_the_image() {
        let device = Device::flex();
        let net = InstanceSegmenterConfig::new()
            .with_features(8)
            .with_hidden(4)
            .with_max_steps(3)
            .init(&device);
        let x = Tensor::<4>::random([2, 1, 64, 64], Distribution::Uniform(0.0, 1.0), &device);
        let out = net.forward(x.clone()).unwrap();
        assert_eq!(out.masks.dims(), [2, 3, 64, 64]);
        assert_eq!(out.confidence.dims(), [2, 3]);
        assert_eq!(out.attention.dims(), [2, 3, 256]);
        let total = out
            .attention
            .clone()
            .sum_dim(2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(total.iter().all(|s| (s - 1.0).abs() < 1e-4), "{total:?}");
        let flipped = net.forward(x.flip([3])).unwrap();
        assert!((out.masks - flipped.masks).abs().max().into_scalar::<f32>() > 1e-5);
        assert!(net.forward(Tensor::zeros([1, 1, 32, 32], &device)).is_err());
    }
}
