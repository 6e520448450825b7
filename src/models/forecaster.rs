//! Video prediction networks of Shi et al. 2015 ("Convolutional LSTM Network"): an
//! encoder-forecaster that reads `T_in` frames and predicts the next `T_out`, built either of
//! ConvLSTM layers (the paper's model) or of fully connected LSTM layers over flattened frames
//! (its FC-LSTM baseline, after Srivastava et al. 2015).
//!
//! **ConvLSTM.** Each 64x64 frame is cut into 4x4 patches, stacked as channels: a 16x16x16
//! tensor (the paper's "patches"). The encoder, a stack of [`ConvLstm`] layers, reads the input
//! frames; the forecaster, a second stack with the same shape, starts from the encoder's final
//! states and runs `T_out` steps, each reading the frame before it: the last input frame
//! first, then its own previous prediction (`σ` of its logits; gradients flow through it). A
//! 1x1 convolution maps the forecaster's top hidden state to 16 channels, which are put back as
//! 4x4 patches: the logits of one 64x64 frame per step.
//!
//! Two departures from the paper, both measured: its forecaster reads no input, and it
//! concatenates every forecaster layer's state before the 1x1 convolution (here the top
//! layer's only). Without input, on 2 CPU cores, the ConvLSTM had learnt nothing but a constant
//! frame after 750 steps (validation MSE 0.0644, the pixels' variance), where the FC-LSTM,
//! whose output layer has a bias per pixel, had learnt the mean frame; reading the previous
//! frame, it learns to move the items (docs/forecast-moving/).
//!
//! **FC-LSTM.** The same encoder-forecaster, its forecaster reading the previous frame too,
//! with [`Lstm`] layers over the flattened 4096-pixel frames and a linear map from the
//! forecaster's top hidden state to 4096 logits.
//!
//! Both return logits; a pixel's predicted intensity is `σ(logit)`, and training minimises
//! the binary cross-entropy against intensities in [0, 1], as the paper.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ops::conv2d_layer;
use crate::recurrent::{ConvLstm, ConvLstmConfig, Lstm, LstmConfig, LstmState};

/// Which recurrent layers a [`Forecaster`] is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForecasterKind {
    /// ConvLSTM layers over 4x4 patches (Shi et al. 2015).
    ConvLstm,
    /// Fully connected LSTM layers over flattened frames (FC-LSTM).
    FcLstm,
}

impl ForecasterKind {
    /// Its name in tables: `ConvLSTM`, `FC-LSTM`.
    pub fn label(self) -> &'static str {
        match self {
            ForecasterKind::ConvLstm => "ConvLSTM",
            ForecasterKind::FcLstm => "FC-LSTM",
        }
    }
}

/// Configuration of a [`Forecaster`].
#[derive(Config, Debug, PartialEq)]
pub struct ForecasterConfig {
    /// The recurrent layers' kind.
    pub kind: ForecasterKind,
    /// Side of a square frame; a multiple of `patch`.
    #[config(default = 64)]
    pub frame_side: usize,
    /// Frames to predict.
    #[config(default = 10)]
    pub frames_out: usize,
    /// ConvLSTM: side of the square patches stacked as channels (default 4: 64x64 -> 16x16x16).
    #[config(default = 4)]
    pub patch: usize,
    /// Channels of every ConvLSTM state, or features of every FC-LSTM state (default 32).
    #[config(default = 32)]
    pub hidden: usize,
    /// ConvLSTM kernel side, odd (default 3).
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Stacked layers in the encoder and in the forecaster (default 2).
    #[config(default = 2)]
    pub num_layers: usize,
}

/// The ConvLSTM encoder-forecaster.
#[derive(Module, Debug)]
pub struct ConvLstmForecaster {
    /// Reads the input frames (as patches).
    pub encoder: ConvLstm,
    /// Runs on from the encoder's states, without input.
    pub forecaster: ConvLstm,
    /// 1x1 convolution, hidden channels -> patch pixels.
    pub output: Conv2d,
}

/// The FC-LSTM encoder-forecaster.
#[derive(Module, Debug)]
pub struct FcLstmForecaster {
    /// Reads the flattened input frames.
    pub encoder: Lstm,
    /// Runs on from the encoder's states, without input.
    pub forecaster: Lstm,
    /// Hidden features -> pixels.
    pub output: Linear,
}

/// A video predictor: one of the two networks (the other field is `None`).
#[derive(Module, Debug)]
pub struct Forecaster {
    /// Set for [`ForecasterKind::ConvLstm`].
    pub conv: Option<ConvLstmForecaster>,
    /// Set for [`ForecasterKind::FcLstm`].
    pub fc: Option<FcLstmForecaster>,
    /// Side of a frame.
    pub frame_side: usize,
    /// Side of a patch (ConvLSTM).
    pub patch: usize,
    /// Frames predicted.
    pub frames_out: usize,
}

/// The logit of the mean intensity of Moving Fashion-MNIST frames (about 0.1: two items on a
/// black 64x64 canvas). The output layers start with it as their bias, so that training does not
/// spend its first hundreds of steps learning that most pixels are black (with a zero bias every
/// pixel starts at 0.5).
const MEAN_INTENSITY_LOGIT: f32 = -2.2;

fn dark_bias(mut c: Conv2d, device: &Device) -> Conv2d {
    let n = c.weight.dims()[0];
    c.bias = Some(Param::from_tensor(Tensor::full(
        [n],
        MEAN_INTENSITY_LOGIT,
        device,
    )));
    c
}

impl ForecasterConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        if self.patch == 0 || !self.frame_side.is_multiple_of(self.patch) {
            return Err(Error::invalid(
                "patch",
                format!(
                    "{} does not divide the {}-pixel frame side",
                    self.patch, self.frame_side
                ),
            ));
        }
        if self.kernel_size.is_multiple_of(2) {
            return Err(Error::invalid(
                "kernel_size",
                format!(
                    "{} is even; \"same\" padding needs an odd kernel",
                    self.kernel_size
                ),
            ));
        }
        for (what, v, max) in [
            ("hidden", self.hidden, 4096),
            ("num_layers", self.num_layers, 8),
            ("frames_out", self.frames_out, 100),
        ] {
            if v == 0 || v > max {
                return Err(Error::invalid(what, format!("{v}: must be 1 to {max}")));
            }
        }
        Ok(())
    }

    /// The network, with PyTorch's default initialisation of every layer.
    pub fn init(&self, device: &Device) -> Forecaster {
        let (conv, fc) = match self.kind {
            ForecasterKind::ConvLstm => {
                let channels = self.patch * self.patch;
                let stack = |input| {
                    ConvLstmConfig::new(input, self.hidden, self.kernel_size)
                        .with_num_layers(self.num_layers)
                        .init(device)
                };
                let conv = ConvLstmForecaster {
                    encoder: stack(channels),
                    forecaster: stack(channels),
                    output: dark_bias(
                        Conv2dConfig::new([self.hidden, channels], [1, 1]).init(device),
                        device,
                    ),
                };
                (Some(conv), None)
            }
            ForecasterKind::FcLstm => {
                let pixels = self.frame_side * self.frame_side;
                let stack = |input| {
                    LstmConfig::new(input, self.hidden)
                        .with_num_layers(self.num_layers)
                        .with_batch_first(true)
                        .init(device)
                };
                let fc = FcLstmForecaster {
                    encoder: stack(pixels),
                    forecaster: stack(pixels),
                    output: {
                        let mut l = LinearConfig::new(self.hidden, pixels).init(device);
                        l.bias = Some(Param::from_tensor(Tensor::full(
                            [pixels],
                            MEAN_INTENSITY_LOGIT,
                            device,
                        )));
                        l
                    },
                };
                (None, Some(fc))
            }
        };
        Forecaster {
            conv,
            fc,
            frame_side: self.frame_side,
            patch: self.patch,
            frames_out: self.frames_out,
        }
    }
}

impl Forecaster {
    /// Logits of the next `frames_out` frames, `[B, T_out, S, S]`, from input frames
    /// `[B, T_in, S, S]` with intensities in [0, 1].
    pub fn forward(&self, frames: Tensor<4>) -> Result<Tensor<4>> {
        let [b, t, h, w] = frames.dims();
        let s = self.frame_side;
        if [h, w] != [s, s] || t == 0 || b == 0 {
            return Err(Error::invalid(
                "frames",
                format!(
                    "shape {:?}; expected [batch, frames, {s}, {s}] with at least one frame",
                    frames.dims()
                ),
            ));
        }
        let out = self.frames_out;
        if let Some(net) = &self.conv {
            let (p, g) = (self.patch, s / self.patch);
            let patches = frames
                .reshape([b * t, g, p, g, p]) // [B·T, gy, py, gx, px]
                .permute([0, 2, 4, 1, 3]) // [B·T, py, px, gy, gx]
                .reshape([b, t, p * p, g, g]); // [B, T, p², g, g]
            let (_, mut state) = net.encoder.forward(patches.clone(), None)?;
            let mut previous = patches.narrow(1, t - 1, 1); // [B, 1, p², g, g]
            let mut logits = Vec::with_capacity(out);
            for _ in 0..out {
                let (hidden, next) = net.forecaster.forward(previous, Some(state))?; // [B, 1, Hc, g, g]
                state = next;
                let hc = hidden.dims()[2];
                let step = conv2d_layer(&net.output, hidden.reshape([b, hc, g, g])); // [B, p², g, g]
                previous = sigmoid(step.clone()).reshape([b, 1, p * p, g, g]);
                logits.push(step);
            }
            Ok(Tensor::stack::<5>(logits, 1) // [B, T_out, p², g, g]
                .reshape([b * out, p, p, g, g]) // [B·T_out, py, px, gy, gx]
                .permute([0, 3, 1, 4, 2]) // [B·T_out, gy, py, gx, px]
                .reshape([b, out, s, s]))
        } else if let Some(net) = &self.fc {
            let flat = frames.reshape([b, t, s * s]); // [B, T_in, S²]
            let (_, mut state) = net.encoder.forward(flat.clone(), None)?;
            let mut previous = flat.narrow(1, t - 1, 1); // [B, 1, S²]
            let mut logits = Vec::with_capacity(out);
            for _ in 0..out {
                let (hidden, next): (Tensor<3>, LstmState) =
                    net.forecaster.forward(previous, Some(state))?; // [B, 1, H]
                state = next;
                let step = net.output.forward(hidden); // [B, 1, S²]
                previous = sigmoid(step.clone());
                logits.push(step);
            }
            Ok(Tensor::cat(logits, 1).reshape([b, out, s, s]))
        } else {
            Err(Error::invalid("model", "a forecaster holds no network"))
        }
    }

    /// Which network this is.
    pub fn kind(&self) -> ForecasterKind {
        if self.conv.is_some() {
            ForecasterKind::ConvLstm
        } else {
            ForecasterKind::FcLstm
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn frames(b: usize, t: usize, side: usize) -> Tensor<4> {
        Tensor::random(
            [b, t, side, side],
            Distribution::Uniform(0.0, 1.0),
            &Device::flex(),
        )
    }

    #[test]
    fn both_networks_predict_frames_that_depend_on_the_input() {
        let device = Device::flex();
        for kind in [ForecasterKind::ConvLstm, ForecasterKind::FcLstm] {
            let net = ForecasterConfig::new(kind)
                .with_frame_side(16)
                .with_frames_out(3)
                .with_hidden(8)
                .init(&device);
            let x = frames(2, 4, 16);
            let y = net.forward(x.clone()).unwrap();
            assert_eq!(y.dims(), [2, 3, 16, 16]);
            let y2 = net.forward(x.clone() * 0.5).unwrap();
            let diff: f32 = (y.clone() - y2).abs().sum().into_scalar();
            assert!(diff > 1e-4, "{kind:?}: output does not depend on the input");
            // Row 1 of the batch does not change row 0's prediction.
            let mut other = x.clone().into_data().try_to_vec::<f32>().unwrap();
            let n = other.len() / 2;
            other[n..].iter_mut().for_each(|v| *v = 1.0 - *v);
            let y3 = net
                .forward(Tensor::from_data(
                    TensorData::new(other, [2, 4, 16, 16]),
                    &device,
                ))
                .unwrap();
            let d0: f32 = (y.clone().narrow(0, 0, 1) - y3.clone().narrow(0, 0, 1))
                .abs()
                .max()
                .into_scalar();
            assert!(d0 < 1e-5, "{kind:?}: rows of a batch interact");
            assert_eq!(net.kind(), kind);
        }
    }

    #[test]
    fn patches_go_back_where_they_came_from() {
        // A 1x1-kernel ConvLSTM cannot move information between patches: a change confined to
        // one 4x4 patch of every input frame changes only that patch of the predictions.
        let device = Device::flex();
        let net = ForecasterConfig::new(ForecasterKind::ConvLstm)
            .with_frame_side(16)
            .with_frames_out(2)
            .with_hidden(4)
            .with_kernel_size(1)
            .init(&device);
        let x = frames(1, 3, 16);
        let mut v = x.clone().into_data().try_to_vec::<f32>().unwrap();
        for t in 0..3 {
            for y in 4..8 {
                for xx in 8..12 {
                    v[t * 256 + y * 16 + xx] = 0.0;
                }
            }
        }
        let x2 = Tensor::from_data(TensorData::new(v, [1, 3, 16, 16]), &device);
        let d = (net.forward(x).unwrap() - net.forward(x2).unwrap())
            .abs()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for t in 0..2 {
            for y in 0..16 {
                for xx in 0..16 {
                    let inside = (4..8).contains(&y) && (8..12).contains(&xx);
                    let changed = d[t * 256 + y * 16 + xx] > 1e-6;
                    assert_eq!(changed, inside, "frame {t} pixel ({y}, {xx})");
                }
            }
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let c = ForecasterConfig::new(ForecasterKind::ConvLstm).with_patch(5);
        assert!(c.validate().unwrap_err().to_string().contains("patch"));
        let c = ForecasterConfig::new(ForecasterKind::ConvLstm).with_kernel_size(2);
        assert!(c.validate().is_err());
        let net = ForecasterConfig::new(ForecasterKind::FcLstm)
            .with_frame_side(16)
            .with_hidden(4)
            .init(&Device::flex());
        assert!(net.forward(frames(1, 2, 8)).is_err());
    }
}
