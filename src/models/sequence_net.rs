//! One recurrent layer and a linear read-out: the network of the long-term-dependency
//! benchmarks, in the four forms the lecture compares.
//!
//! - `tanh`: Elman RNN, `h_t = tanh(W_ih x_t + W_hh h_{t−1} + b)`, PyTorch's initialisation;
//! - `irnn`: the same with ReLU, `W_hh = I`, zero biases and input weights `N(0, 0.001²)`
//!   (Le, Jaitly & Hinton 2015): at initialisation the state is copied unchanged from step to
//!   step, so gradients neither vanish nor explode;
//! - `lstm`: with the forget-gate bias at 1 (Gers et al. 2000; Jozefowicz et al. 2015), so the
//!   cell path starts open (σ(1) ≈ 0.73);
//! - `gru`: PyTorch's formulation and initialisation.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::recurrent::{
    CellKind, CellTensors, Gru, GruConfig, Lstm, LstmConfig, Nonlinearity, Rnn, RnnConfig,
};

/// The recurrent layer of a [`SequenceNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeqCell {
    /// Elman RNN with tanh.
    Tanh,
    /// ReLU RNN with identity recurrent initialisation (IRNN).
    Irnn,
    /// LSTM with forget bias 1.
    Lstm,
    /// GRU.
    Gru,
}

impl SeqCell {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SeqCell::Tanh => "tanh",
            SeqCell::Irnn => "irnn",
            SeqCell::Lstm => "lstm",
            SeqCell::Gru => "gru",
        }
    }
}

/// Configuration of a [`SequenceNet`].
#[derive(Config, Debug, PartialEq)]
pub struct SequenceNetConfig {
    /// Features per input step.
    pub input_size: usize,
    /// Outputs per read-out step.
    pub output_size: usize,
    /// The recurrent layer.
    pub cell: SeqCell,
    /// Hidden features (default 128).
    #[config(default = 128)]
    pub hidden_size: usize,
}

impl SequenceNetConfig {
    /// The network, initialised as the module doc says.
    pub fn init(&self, device: &Device) -> SequenceNet {
        let (i, h) = (self.input_size, self.hidden_size);
        let (mut rnn, mut lstm, mut gru) = (None, None, None);
        match self.cell {
            SeqCell::Tanh => rnn = Some(RnnConfig::new(i, h).with_batch_first(true).init(device)),
            SeqCell::Irnn => {
                let mut layer = RnnConfig::new(i, h)
                    .with_batch_first(true)
                    .with_nonlinearity(Nonlinearity::Relu)
                    .init(device);
                let cell = &mut layer.cells[0];
                cell.weight_hh = Param::from_tensor(Tensor::eye(h, device));
                cell.weight_ih = Param::from_tensor(Tensor::random(
                    [h, i],
                    Distribution::Normal(0.0, 0.001),
                    device,
                ));
                cell.bias_ih = Some(Param::from_tensor(Tensor::zeros([h], device)));
                cell.bias_hh = Some(Param::from_tensor(Tensor::zeros([h], device)));
                rnn = Some(layer);
            }
            SeqCell::Lstm => {
                let mut layer = LstmConfig::new(i, h).with_batch_first(true).init(device);
                let cell = &mut layer.cells[0];
                // Gates i, f, g, o: rows h..2h of the biases are the forget gate's; their sum
                // (the gate's bias) is 1.
                let forget =
                    |b: Tensor<1>, v: f32| b.slice_assign(h..2 * h, Tensor::full([h], v, device));
                if let (Some(bi), Some(bh)) = (cell.bias_ih.take(), cell.bias_hh.take()) {
                    cell.bias_ih = Some(Param::from_tensor(forget(bi.val(), 1.0).detach()));
                    cell.bias_hh = Some(Param::from_tensor(forget(bh.val(), 0.0).detach()));
                }
                lstm = Some(layer);
            }
            SeqCell::Gru => gru = Some(GruConfig::new(i, h).with_batch_first(true).init(device)),
        }
        SequenceNet {
            rnn,
            lstm,
            gru,
            head: LinearConfig::new(h, self.output_size).init(device),
        }
    }
}

/// One recurrent layer and a linear read-out; see the module doc.
#[derive(Module, Debug)]
pub struct SequenceNet {
    /// The Elman layer (tanh or IRNN).
    pub rnn: Option<Rnn>,
    /// The LSTM layer.
    pub lstm: Option<Lstm>,
    /// The GRU layer.
    pub gru: Option<Gru>,
    /// Hidden state to outputs.
    pub head: Linear,
}

impl SequenceNet {
    /// `x [B, T, I]` -> hidden states `[B, T, H]`.
    pub fn states(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        Ok(match (&self.rnn, &self.lstm, &self.gru) {
            (Some(r), _, _) => r.forward(x, None)?.0,
            (_, Some(l), _) => l.forward(x, None)?.0,
            (_, _, Some(g)) => g.forward(x, None)?.0,
            _ => unreachable!("a SequenceNet has one recurrent layer"),
        })
    }

    /// The recurrence and its weights as plain tensors (what
    /// [`state_gradient_norms`](crate::recurrent::diagnostics::state_gradient_norms) steps).
    pub fn recurrence(&self) -> (CellKind, CellTensors) {
        match (&self.rnn, &self.lstm, &self.gru) {
            (Some(r), _, _) => (r.kind(), r.cells[0].tensors()),
            (_, Some(l), _) => (l.kind(), l.cells[0].tensors()),
            (_, _, Some(g)) => (g.kind(), g.cells[0].tensors()),
            _ => unreachable!("a SequenceNet has one recurrent layer"),
        }
    }

    /// `x [B, T, I]` -> outputs at the last step `[B, O]` (many-to-one).
    pub fn forward_last(&self, x: Tensor<3>) -> Result<Tensor<2>> {
        let h = self.states(x)?;
        let [b, t, hidden] = h.dims();
        let last = h.narrow(1, t - 1, 1).reshape([b, hidden]); // [B, H]
        Ok(self.head.forward(last))
    }

    /// `x [B, T, I]` -> outputs at every step `[B, T, O]` (many-to-many).
    pub fn forward_all(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        Ok(self.head.forward(self.states(x)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irnn_starts_as_the_identity_and_lstm_with_an_open_forget_gate() {
        let device = Device::flex();
        let irnn = SequenceNetConfig::new(2, 1, SeqCell::Irnn)
            .with_hidden_size(4)
            .init(&device);
        let cell = &irnn.rnn.as_ref().unwrap().cells[0];
        let w = cell
            .weight_hh
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(
            w,
            vec![1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.]
        );
        let lstm = SequenceNetConfig::new(2, 1, SeqCell::Lstm)
            .with_hidden_size(3)
            .init(&device);
        let c = &lstm.lstm.as_ref().unwrap().cells[0];
        let b = (c.bias_ih.as_ref().unwrap().val() + c.bias_hh.as_ref().unwrap().val())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&b[3..6], &[1.0, 1.0, 1.0]);
        assert!(b[..3].iter().all(|&v| v != 1.0));
        let x = Tensor::<3>::ones([2, 5, 2], &device);
        assert_eq!(lstm.forward_last(x.clone()).unwrap().dims(), [2, 1]);
        assert_eq!(irnn.forward_all(x).unwrap().dims(), [2, 5, 1]);
    }
}
