//! Recurrent instance segmentation (Romera-Paredes & Torr 2016, "Recurrent Instance
//! Segmentation"): a CNN encodes the image once; a ConvLSTM reads that encoding at every step
//! and, step by step, emits one instance's mask and a confidence that an instance is left to
//! segment. Its state remembers which objects it has already segmented, so it can count.
//!
//! - Encoder: three 3x3 convolutions with ReLU and two 2x2 max pools, 64x64 -> `features` maps
//!   of 16x16 (He initialisation, as [`crate::vision::fcn`]).
//! - Recurrence: a [`ConvLstm`] over `max_steps` steps, reading at each the encoding and a
//!   *canvas*: the largest mask probability of the steps so far, averaged over 4x4 blocks
//!   (16x16). The paper's ConvLSTM reads the encoding only; without the canvas, on 2 CPU cores,
//!   its matched soft IoU stalled at 0.39 from the second epoch (docs/instances-scenes/): a 3x3
//!   recurrence spreads the news of what is done one cell a step, too slowly to pick one item of
//!   four. The canvas hands it over at once.
//! - Outputs of step `t`: mask logits — a 1x1 convolution of `h_t` to one channel at 16x16,
//!   up-sampled x4 by a transposed convolution initialised to bilinear — plus the encoder's
//!   32x32 maps weighted by channel weights the step computes from its state (a skip, as FCN's,
//!   for the items' finer outlines), up-sampled x2; and the
//!   confidence logit `s_t`, a linear map of `h_t` averaged over space.
//!
//! The matching loss that trains it is in [`crate::tasks::instances`].

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::error::{Error, Result};
use crate::ops::{conv2d_layer, max_pool2x2};
use crate::recurrent::{ConvLstm, ConvLstmConfig};
use crate::vision::fcn::upsample;

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
    /// The recurrence.
    pub rnn: ConvLstm,
    /// 1x1, hidden -> 1: a step's mask logits at 16x16.
    pub mask: Conv2d,
    /// x4 up-sampling of the mask logits (bilinear at first).
    pub upscore: ConvTranspose2d,
    /// Each step's weights of the encoder's 32 maps at 32x32 (from the state averaged over
    /// space): the skip that gives a mask finer outlines than the 16x16 state.
    pub skip_gate: Linear,
    /// Confidence logit from the state averaged over space.
    pub confidence: Linear,
    /// Steps.
    pub max_steps: usize,
}

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

impl InstanceSegmenterConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        for (what, v, max) in [
            ("features", self.features, 1024),
            ("hidden", self.hidden, 1024),
            ("max_steps", self.max_steps, 32),
        ] {
            if v == 0 || v > max {
                return Err(Error::invalid(what, format!("{v}: must be 1 to {max}")));
            }
        }
        Ok(())
    }

    /// The network.
    pub fn init(&self, device: &Device) -> InstanceSegmenter {
        InstanceSegmenter {
            enc1: he_conv([1, 32], 3, device),
            enc2: he_conv([32, 32], 3, device),
            enc3: he_conv([32, self.features], 3, device),
            rnn: ConvLstmConfig::new(self.features + 1, self.hidden, 3).init(device),
            mask: Conv2dConfig::new([self.hidden, 1], [1, 1]).init(device),
            upscore: upsample(1, 4, device),
            skip_gate: LinearConfig::new(self.hidden, 32).init(device),
            confidence: LinearConfig::new(self.hidden, 1).init(device),
            max_steps: self.max_steps,
        }
    }
}

impl InstanceSegmenter {
    /// `images [B, 1, 64, 64]` (intensities in [0, 1]) -> `(mask logits [B, T, 64, 64],
    /// confidence logits [B, T])`, `T = max_steps`.
    pub fn forward(&self, images: Tensor<4>) -> Result<(Tensor<4>, Tensor<2>)> {
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
        let t = self.max_steps;
        let e1 = relu(conv2d_layer(&self.enc1, images)); // [B, 32, 64, 64]
        let e2 = relu(conv2d_layer(&self.enc2, max_pool2x2(e1))); // [B, 32, 32, 32]
        let e3 = relu(conv2d_layer(&self.enc3, max_pool2x2(e2.clone()))); // [B, F, 16, 16]
        let device = e3.device();
        let mut canvas = Tensor::<4>::zeros([b, 1, 16, 16], &device);
        let mut state = None;
        let (mut masks, mut confidences) = (Vec::with_capacity(t), Vec::with_capacity(t));
        for _ in 0..t {
            let input = Tensor::cat(vec![e3.clone(), canvas.clone()], 1).unsqueeze_dim::<5>(1); // [B, 1, F+1, 16, 16]
            let (hidden, next) = self.rnn.forward(input, state)?; // [B, 1, Hc, 16, 16]
            state = Some(next);
            let hc = hidden.dims()[2];
            let h = hidden.reshape([b, hc, 16, 16]); // [B, Hc, 16, 16]
            let coarse = self.upscore.forward(conv2d_layer(&self.mask, h.clone())); // [B, 1, 64, 64]
            let pooled = h.mean_dim(3).mean_dim(2).reshape([b, hc]); // [B, Hc]
                                                                     // The skip: the 32x32 encoder maps weighted by the step's own channel weights.
            let gate = self.skip_gate.forward(pooled.clone()); // [B, 32]
            let fine = (e2.clone() * gate.reshape([b, 32, 1, 1])).sum_dim(1); // [B, 1, 32, 32]
            let fine = fine
                .reshape([b, 32, 1, 32, 1])
                .expand([b, 32, 2, 32, 2])
                .reshape([b, 1, 64, 64]); // nearest x2
            let mask = coarse + fine; // [B, 1, 64, 64]
                                      // The canvas: what the steps so far have covered, averaged over 4x4 blocks.
            let covered = sigmoid(mask.clone())
                .reshape([b, 16, 4, 16, 4])
                .mean_dim(4)
                .mean_dim(2)
                .reshape([b, 1, 16, 16]);
            canvas = canvas.max_pair(covered);
            masks.push(mask);
            confidences.push(self.confidence.forward(pooled)); // [B, 1]
        }
        let masks = Tensor::cat(masks, 1); // [B, T, 64, 64]
        let confidence = Tensor::cat(confidences, 1); // [B, T]
        Ok((masks, confidence))
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
        let (m, s) = net.forward(x.clone()).unwrap();
        assert_eq!(m.dims(), [2, 3, 64, 64]);
        assert_eq!(s.dims(), [2, 3]);
        let (m2, _) = net.forward(x.flip([3])).unwrap();
        assert!((m - m2).abs().max().into_scalar::<f32>() > 1e-5);
        assert!(net.forward(Tensor::zeros([1, 1, 32, 32], &device)).is_err());
    }
}
