//! ConvLSTM (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
//! Precipitation Nowcasting"): an LSTM whose states are feature maps and whose input-to-state
//! and state-to-state products are convolutions, so it keeps the spatial structure of video
//! frames. With `*` a "same"-padded convolution and `∘` the Hadamard product:
//!
//! - `i_t = σ(W_xi * X_t + W_hi * H_{t-1} + W_ci ∘ C_{t-1} + b_i)`
//! - `f_t = σ(W_xf * X_t + W_hf * H_{t-1} + W_cf ∘ C_{t-1} + b_f)`
//! - `C_t = f_t ∘ C_{t-1} + i_t ∘ tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)`
//! - `o_t = σ(W_xo * X_t + W_ho * H_{t-1} + W_co ∘ C_t + b_o)`
//! - `H_t = o_t ∘ tanh(C_t)`
//!
//! The peephole terms (`W_c· ∘ C`) are optional (Keras' ConvLSTM2D has none); with them the
//! layer is tied to one frame size. The four gates' convolutions are stacked in one kernel
//! (gate order i, f, g, o as in [`super::LstmCell`]): `conv_x` over the input (with the
//! biases) runs once over all frames of the sequence before the time loop, `conv_h` over the
//! hidden state once per step.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Device, Distribution, Tensor};

use crate::error::{Error, Result};
use crate::ops::conv2d_s1;
use crate::weights::StateDict;

/// Configuration of a [`ConvLstm`].
#[derive(Config, Debug)]
pub struct ConvLstmConfig {
    /// Channels of each input frame.
    pub input_channels: usize,
    /// Channels of the hidden and cell states (every layer).
    pub hidden_channels: usize,
    /// Side of the square kernels; odd, so that "same" padding keeps the frame size.
    pub kernel_size: usize,
    /// Stacked layers (default 1); layer `k > 0` reads layer `k - 1`'s hidden states.
    #[config(default = 1)]
    pub num_layers: usize,
    /// Frame size `[height, width]` for peephole connections; `None` (default): no peepholes.
    #[config(default = "None")]
    pub peepholes: Option<[usize; 2]>,
}

/// One ConvLSTM layer's weights.
#[derive(Module, Debug)]
pub struct ConvLstmCell {
    /// Input-to-state convolutions of the four gates, with their biases: `[4·Hc, C, k, k]`.
    pub conv_x: Conv2d,
    /// State-to-state convolutions of the four gates, no bias: `[4·Hc, Hc, k, k]`.
    pub conv_h: Conv2d,
    /// Peephole weights of the input gate, `[Hc, H, W]`.
    pub w_ci: Option<Param<Tensor<3>>>,
    /// Peephole weights of the forget gate, `[Hc, H, W]`.
    pub w_cf: Option<Param<Tensor<3>>>,
    /// Peephole weights of the output gate, `[Hc, H, W]`.
    pub w_co: Option<Param<Tensor<3>>>,
}

/// A stack of ConvLSTM layers.
#[derive(Module, Debug)]
pub struct ConvLstm {
    /// One cell per layer.
    pub cells: Vec<ConvLstmCell>,
    /// Channels of the input frames.
    pub input_channels: usize,
    /// Channels of the states.
    pub hidden_channels: usize,
    /// Kernel side.
    pub kernel_size: usize,
}

/// The states of a [`ConvLstm`]: `h` and `c`, each `[num_layers, B, Hc, H, W]`.
#[derive(Debug, Clone)]
pub struct ConvLstmState {
    /// Hidden states.
    pub h: Tensor<5>,
    /// Cell states.
    pub c: Tensor<5>,
}

impl ConvLstmConfig {
    /// The layer; convolutions with PyTorch's default initialisation, peepholes uniform in
    /// `±1/√(Hc)`.
    pub fn init(&self, device: &Device) -> ConvLstm {
        let (hc, k) = (self.hidden_channels, self.kernel_size);
        let pad = k / 2;
        let cells = (0..self.num_layers.max(1))
            .map(|layer| {
                let cin = if layer == 0 { self.input_channels } else { hc };
                let peep = |shape: [usize; 2]| {
                    let b = 1.0 / (hc as f64).sqrt();
                    Param::from_tensor(Tensor::random(
                        [hc, shape[0], shape[1]],
                        Distribution::Uniform(-b, b),
                        device,
                    ))
                };
                ConvLstmCell {
                    conv_x: Conv2dConfig::new([cin, 4 * hc], [k, k])
                        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                        .init(device),
                    conv_h: Conv2dConfig::new([hc, 4 * hc], [k, k])
                        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                        .with_bias(false)
                        .init(device),
                    w_ci: self.peepholes.map(peep),
                    w_cf: self.peepholes.map(peep),
                    w_co: self.peepholes.map(peep),
                }
            })
            .collect();
        ConvLstm {
            cells,
            input_channels: self.input_channels,
            hidden_channels: hc,
            kernel_size: k,
        }
    }
}

impl ConvLstmCell {
    /// One step: `x [B, 4·Hc, H, W]` (the input convolution, already computed), `h`, `c`
    /// `[B, Hc, H, W]` -> `(h', c')`.
    fn step(&self, xa: Tensor<4>, h: Tensor<4>, c: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let hc = h.dims()[1];
        let k = self.conv_h.kernel_size[0];
        let w = self.conv_h.weight.val();
        let zero_bias = Tensor::zeros([4 * hc], &w.device());
        let a = xa + conv2d_s1(h, w, zero_bias, [k / 2, k / 2]); // [B, 4·Hc, H, W]
        let gate = |j: usize| a.clone().narrow(1, j * hc, hc); // [B, Hc, H, W]
        let peep = |p: &Option<Param<Tensor<3>>>, c: &Tensor<4>, g: Tensor<4>| match p {
            Some(p) => g + p.val().unsqueeze::<4>() * c.clone(),
            None => g,
        };
        let i = sigmoid(peep(&self.w_ci, &c, gate(0)));
        let f = sigmoid(peep(&self.w_cf, &c, gate(1)));
        let c = f * c + i * tanh(gate(2));
        let o = sigmoid(peep(&self.w_co, &c, gate(3)));
        (o * tanh(c.clone()), c)
    }
}

impl ConvLstm {
    /// `input [B, T, C, H, W]`, optional initial state -> `(outputs [B, T, Hc, H, W]` of the last
    /// layer, final state`)`.
    pub fn forward(
        &self,
        input: Tensor<5>,
        state: Option<ConvLstmState>,
    ) -> Result<(Tensor<5>, ConvLstmState)> {
        let [b, t, c, height, width] = input.dims();
        let (hc, layers) = (self.hidden_channels, self.cells.len());
        if c != self.input_channels {
            return Err(Error::invalid(
                "input",
                format!(
                    "frames have {c} channels (shape {:?} read as [batch, time, channels, height, width]); the layer expects {}",
                    input.dims(),
                    self.input_channels
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
        if b == 0 || t == 0 {
            return Err(Error::invalid(
                "input",
                format!("shape {:?} is empty", input.dims()),
            ));
        }
        if let Some(p) = &self.cells[0].w_ci {
            let [_, ph, pw] = p.val().dims();
            if [ph, pw] != [height, width] {
                return Err(Error::invalid(
                    "input",
                    format!("frames are {height}x{width}; the peepholes were built for {ph}x{pw}"),
                ));
            }
        }
        let expected = [layers, b, hc, height, width];
        let device = input.device();
        let state = match state {
            Some(s) => {
                for (name, t) in [("h0", &s.h), ("c0", &s.c)] {
                    if t.dims() != expected {
                        return Err(Error::invalid(
                            name,
                            format!("shape {:?}; expected {expected:?}", t.dims()),
                        ));
                    }
                }
                s
            }
            None => ConvLstmState {
                h: Tensor::zeros(expected, &device),
                c: Tensor::zeros(expected, &device),
            },
        };
        let mut x = input;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (layer, cell) in self.cells.iter().enumerate() {
            let cin = x.dims()[2];
            let frames = x.reshape([b * t, cin, height, width]); // [B·T, C, H, W]
            let xa = crate::ops::conv2d_layer(&cell.conv_x, frames).reshape([
                b,
                t,
                4 * hc,
                height,
                width,
            ]); // [B, T, 4·Hc, H, W]
            let pick = |s: &Tensor<5>| {
                s.clone()
                    .narrow(0, layer, 1)
                    .reshape([b, hc, height, width])
            };
            let (mut h, mut c) = (pick(&state.h), pick(&state.c));
            let mut outs = Vec::with_capacity(t);
            for step in 0..t {
                let xa_t = xa
                    .clone()
                    .narrow(1, step, 1)
                    .reshape([b, 4 * hc, height, width]);
                (h, c) = cell.step(xa_t, h, c);
                outs.push(h.clone());
            }
            x = Tensor::stack(outs, 1); // [B, T, Hc, H, W]
            hs.push(h);
            cs.push(c);
        }
        Ok((
            x,
            ConvLstmState {
                h: Tensor::stack(hs, 0),
                c: Tensor::stack(cs, 0),
            },
        ))
    }

    /// The weights by module path (`cells.0.conv_x.weight`, `cells.0.w_ci`, ...).
    pub fn state_dict(&self) -> StateDict {
        let mut d = StateDict::new("model");
        for (l, cell) in self.cells.iter().enumerate() {
            let p = format!("cells.{l}.");
            d.insert(format!("{p}conv_x.weight"), cell.conv_x.weight.val());
            if let Some(b) = &cell.conv_x.bias {
                d.insert(format!("{p}conv_x.bias"), b.val());
            }
            d.insert(format!("{p}conv_h.weight"), cell.conv_h.weight.val());
            for (name, w) in [
                ("w_ci", &cell.w_ci),
                ("w_cf", &cell.w_cf),
                ("w_co", &cell.w_co),
            ] {
                if let Some(w) = w {
                    d.insert(format!("{p}{name}"), w.val());
                }
            }
        }
        d
    }

    /// Loads weights named as [`state_dict`](Self::state_dict) writes them; missing,
    /// mis-shaped and unexpected tensors are errors naming the key.
    pub fn load_state_dict(&self, dict: &StateDict) -> Result<Self> {
        let mut used = Vec::new();
        let mut cells = Vec::new();
        for (l, cell) in self.cells.iter().enumerate() {
            let p = format!("cells.{l}.");
            let device = cell.conv_x.weight.val().device();
            let mut take4 = |name: &str, like: &Tensor<4>| {
                used.push(format!("{p}{name}"));
                dict.tensor(&format!("{p}{name}"), like.dims(), &device)
            };
            let mut conv_x = cell.conv_x.clone();
            let mut conv_h = cell.conv_h.clone();
            conv_x.weight = Param::from_tensor(take4("conv_x.weight", &cell.conv_x.weight.val())?);
            conv_h.weight = Param::from_tensor(take4("conv_h.weight", &cell.conv_h.weight.val())?);
            if let Some(b) = &cell.conv_x.bias {
                used.push(format!("{p}conv_x.bias"));
                conv_x.bias = Some(Param::from_tensor(dict.tensor(
                    &format!("{p}conv_x.bias"),
                    b.val().dims(),
                    &device,
                )?));
            }
            let mut peep = |name: &str, w: &Option<Param<Tensor<3>>>| -> Result<_> {
                match w {
                    Some(w) => {
                        used.push(format!("{p}{name}"));
                        Ok(Some(Param::from_tensor(dict.tensor(
                            &format!("{p}{name}"),
                            w.val().dims(),
                            &device,
                        )?)))
                    }
                    None => Ok(None),
                }
            };
            cells.push(ConvLstmCell {
                w_ci: peep("w_ci", &cell.w_ci)?,
                w_cf: peep("w_cf", &cell.w_cf)?,
                w_co: peep("w_co", &cell.w_co)?,
                conv_x,
                conv_h,
            });
        }
        dict.check_no_unexpected(used.iter().map(String::as_str))?;
        Ok(ConvLstm { cells, ..*self })
    }
}
