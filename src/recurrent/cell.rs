//! Recurrent cells: one time step, written from the lecture's equations with burn tensor ops.
//!
//! These are the reference: the layers in [`super::layer`] run the same equations through the
//! fused kernel (`super::kernel`) on the CPU and through [`step`] everywhere else, and the
//! tests compare the two. Parameter names and layouts are PyTorch's `nn.RNNCell` / `nn.LSTMCell`
//! / `nn.GRUCell` ones (`weight_ih [G·H, I]`, `weight_hh [G·H, H]`, `bias_ih`, `bias_hh`, gates
//! stacked in PyTorch's order), so a torch cell's state dict loads as is.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

/// Which recurrent cell a sequence model uses (the user's choice; [`CellKind`] is what a layer computes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's `nn.LSTM`.
    Lstm,
    /// Gated recurrent unit (Cho et al. 2014), PyTorch's `nn.GRU`.
    Gru,
}

/// Which recurrence a cell or layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellKind {
    /// Elman RNN with tanh.
    RnnTanh,
    /// Elman RNN with ReLU.
    RnnRelu,
    /// LSTM (gates i, f, g, o).
    Lstm,
    /// GRU, PyTorch/cuDNN formulation: reset applied after the recurrent product.
    Gru,
    /// GRU, the lecture's formulation (Cho et al. 2014): reset applied to `h_{t-1}` before it.
    GruResetBefore,
}

impl CellKind {
    /// Gates per hidden unit: rows of `weight_ih` are `gates() · hidden_size`.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru | CellKind::GruResetBefore => 3,
        }
    }

    /// Whether the cell carries a cell state `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    pub(crate) fn code(self) -> usize {
        self as usize
    }

    pub(crate) fn from_code(code: usize) -> Self {
        [
            CellKind::RnnTanh,
            CellKind::RnnRelu,
            CellKind::Lstm,
            CellKind::Gru,
            CellKind::GruResetBefore,
        ][code]
    }
}

/// The nonlinearity of an Elman RNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `max(0, x)`.
    Relu,
}

/// Where a GRU applies its reset gate. The two are different functions: a parity test or a
/// weight import must pick the one its source used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GruReset {
    /// PyTorch / cuDNN: `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`.
    #[default]
    After,
    /// The lecture (Cho et al. 2014; Keras `reset_after=False`):
    /// `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`.
    Before,
}

/// The weights of one cell as plain tensors (biases are zeros where the cell has none).
#[derive(Debug, Clone)]
pub struct CellTensors {
    /// `[G·H, I]`
    pub weight_ih: Tensor<2>,
    /// `[G·H, H]`
    pub weight_hh: Tensor<2>,
    /// `[G·H]`
    pub bias_ih: Tensor<1>,
    /// `[G·H]`
    pub bias_hh: Tensor<1>,
}

/// One step of `kind` with the weights `w`: `x [B, I]`, `h [B, H]`, `c [B, H]` (ignored unless
/// LSTM) -> `(h', c')` (`c' = c` unless LSTM). burn ops only: differentiable on every backend.
pub fn step(
    kind: CellKind,
    w: &CellTensors,
    x: Tensor<2>,
    h: Tensor<2>,
    c: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let hidden = h.dims()[1];
    let xp = x.matmul(w.weight_ih.clone().transpose()) + w.bias_ih.clone().unsqueeze(); // [B, G·H]
    let gate = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * hidden, hidden); // [B, H]
    match kind {
        CellKind::RnnTanh | CellKind::RnnRelu => {
            let a = xp + h.matmul(w.weight_hh.clone().transpose()) + w.bias_hh.clone().unsqueeze();
            let h = if kind == CellKind::RnnTanh {
                tanh(a)
            } else {
                relu(a)
            };
            (h, c)
        }
        CellKind::Lstm => {
            let a = xp + h.matmul(w.weight_hh.clone().transpose()) + w.bias_hh.clone().unsqueeze();
            let i = sigmoid(gate(&a, 0));
            let f = sigmoid(gate(&a, 1));
            let g = tanh(gate(&a, 2));
            let o = sigmoid(gate(&a, 3));
            let c = f * c + i * g;
            (o * tanh(c.clone()), c)
        }
        CellKind::Gru => {
            let hp =
                h.clone().matmul(w.weight_hh.clone().transpose()) + w.bias_hh.clone().unsqueeze();
            let r = sigmoid(gate(&xp, 0) + gate(&hp, 0));
            let z = sigmoid(gate(&xp, 1) + gate(&hp, 1));
            let n = tanh(gate(&xp, 2) + r * gate(&hp, 2));
            (z.clone().neg().add_scalar(1.0) * n + z * h, c)
        }
        CellKind::GruResetBefore => {
            let w_hh = |k: usize| w.weight_hh.clone().narrow(0, k * hidden, hidden); // [H, H]
            let b_hh = |k: usize| w.bias_hh.clone().narrow(0, k * hidden, hidden).unsqueeze(); // [1, H]
            let r = sigmoid(gate(&xp, 0) + h.clone().matmul(w_hh(0).transpose()) + b_hh(0));
            let z = sigmoid(gate(&xp, 1) + h.clone().matmul(w_hh(1).transpose()) + b_hh(1));
            let n = tanh(gate(&xp, 2) + (r * h.clone()).matmul(w_hh(2).transpose()) + b_hh(2));
            (z.clone().neg().add_scalar(1.0) * n + z * h, c)
        }
    }
}

/// PyTorch's initialisation of recurrent weights: every weight and bias uniform in
/// `[-1/√H, 1/√H]`.
fn uniform<const D: usize>(shape: [usize; D], hidden: usize, device: &Device) -> Param<Tensor<D>> {
    let k = 1.0 / (hidden as f64).sqrt();
    Param::from_tensor(Tensor::random(shape, Distribution::Uniform(-k, k), device))
}

macro_rules! cell {
    ($(#[$doc:meta])* $name:ident, $config:ident, $gates:expr) => {
        $(#[$doc])*
        #[derive(Module, Debug)]
        pub struct $name {
            /// Input-to-hidden weights of all gates, `[G·H, I]`.
            pub weight_ih: Param<Tensor<2>>,
            /// Hidden-to-hidden weights of all gates, `[G·H, H]`.
            pub weight_hh: Param<Tensor<2>>,
            /// Input-to-hidden bias, `[G·H]` (absent with `bias = false`).
            pub bias_ih: Option<Param<Tensor<1>>>,
            /// Hidden-to-hidden bias, `[G·H]`.
            pub bias_hh: Option<Param<Tensor<1>>>,
            /// `H`.
            pub hidden_size: usize,
            #[module(skip)]
            kind: CellKind,
        }

        impl $name {
            /// The recurrence this cell computes.
            pub fn kind(&self) -> CellKind {
                self.kind
            }

            /// The weights as plain tensors; a missing bias becomes zeros.
            pub fn tensors(&self) -> CellTensors {
                let weight_ih = self.weight_ih.val();
                let rows = weight_ih.dims()[0];
                let device = weight_ih.device();
                let bias = |b: &Option<Param<Tensor<1>>>| match b {
                    Some(b) => b.val(),
                    None => Tensor::zeros([rows], &device),
                };
                CellTensors {
                    bias_ih: bias(&self.bias_ih),
                    bias_hh: bias(&self.bias_hh),
                    weight_hh: self.weight_hh.val(),
                    weight_ih,
                }
            }

            pub(crate) fn from_parts(
                kind: CellKind,
                input_size: usize,
                hidden_size: usize,
                bias: bool,
                device: &Device,
            ) -> Self {
                let g = $gates * hidden_size;
                $name {
                    weight_ih: uniform([g, input_size], hidden_size, device),
                    weight_hh: uniform([g, hidden_size], hidden_size, device),
                    bias_ih: bias.then(|| uniform([g], hidden_size, device)),
                    bias_hh: bias.then(|| uniform([g], hidden_size, device)),
                    hidden_size,
                    kind,
                }
            }

            pub(crate) fn with_tensors(
                &self,
                weight_ih: Tensor<2>,
                weight_hh: Tensor<2>,
                bias_ih: Option<Tensor<1>>,
                bias_hh: Option<Tensor<1>>,
            ) -> Self {
                $name {
                    weight_ih: Param::from_tensor(weight_ih),
                    weight_hh: Param::from_tensor(weight_hh),
                    bias_ih: bias_ih.map(Param::from_tensor),
                    bias_hh: bias_hh.map(Param::from_tensor),
                    hidden_size: self.hidden_size,
                    kind: self.kind,
                }
            }
        }

        impl CellAccess for $name {
            fn kind(&self) -> CellKind {
                $name::kind(self)
            }
            fn tensors(&self) -> CellTensors {
                $name::tensors(self)
            }
            fn has_bias(&self) -> bool {
                self.bias_ih.is_some()
            }
            fn from_parts(
                kind: CellKind,
                input: usize,
                hidden: usize,
                bias: bool,
                device: &Device,
            ) -> Self {
                $name::from_parts(kind, input, hidden, bias, device)
            }
            fn with_tensors(
                &self,
                weight_ih: Tensor<2>,
                weight_hh: Tensor<2>,
                bias_ih: Option<Tensor<1>>,
                bias_hh: Option<Tensor<1>>,
            ) -> Self {
                $name::with_tensors(self, weight_ih, weight_hh, bias_ih, bias_hh)
            }
        }
    };
}

/// What the layers need from a cell type.
pub(crate) trait CellAccess: Module + Sized {
    fn kind(&self) -> CellKind;
    fn tensors(&self) -> CellTensors;
    fn has_bias(&self) -> bool;
    fn from_parts(kind: CellKind, input: usize, hidden: usize, bias: bool, device: &Device)
        -> Self;
    fn with_tensors(
        &self,
        weight_ih: Tensor<2>,
        weight_hh: Tensor<2>,
        bias_ih: Option<Tensor<1>>,
        bias_hh: Option<Tensor<1>>,
    ) -> Self;
}

cell!(
    /// Elman RNN cell. The lecture writes it as
    ///
    /// - state `A_t = φ(θ_c A_{t-1} + θ_x x_t)`, φ = tanh or ReLU
    /// - output `h_t = θ_h A_t`
    ///
    /// This cell computes the state, with PyTorch's names and two biases:
    /// `A_t = φ(W_ih x_t + b_ih + W_hh A_{t-1} + b_hh)` (θ_x = `weight_ih`, θ_c = `weight_hh`;
    /// PyTorch calls the state `h`). The read-out θ_h is a separate linear layer on top.
    /// Backpropagating through T steps multiplies the gradient by `W_hhᵀ diag(φ'(a_t))` T times:
    /// it vanishes or explodes geometrically with the spectral radius of `W_hh`.
    RnnCell,
    RnnCellConfig,
    1
);

cell!(
    /// LSTM cell, gates stacked `i, f, g, o` as in PyTorch:
    ///
    /// - input gate `i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)`
    /// - forget gate `f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)`
    /// - cell update `g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)`
    /// - output gate `o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)`
    /// - cell `C_t = f_t ⊙ C_{t-1} + i_t ⊙ g_t`
    /// - output `h_t = o_t ⊙ tanh(C_t)`
    ///
    /// The cell path `C_{t-1} → C_t` is multiplied only by `f_t`: with the forget gate open the
    /// gradient crosses many steps undamped, which a plain RNN's `W_hh` product cannot do.
    LstmCell,
    LstmCellConfig,
    4
);

cell!(
    /// GRU cell, gates stacked `r, z, n` as in PyTorch, in either formulation ([`GruReset`]):
    ///
    /// - reset gate `r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)`
    /// - update gate `z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)`
    /// - candidate, reset after (PyTorch/cuDNN):
    ///   `n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))`
    /// - candidate, reset before (the lecture, Cho et al. 2014):
    ///   `Ĥ_t = tanh(W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn)`
    /// - output `h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}` (the lecture's
    ///   `H_t = u_t ∘ H_{t-1} + (1 − u_t) ∘ Ĥ_t` with `u = z`).
    GruCell,
    GruCellConfig,
    3
);

/// Configuration of an [`RnnCell`].
#[derive(Config, Debug)]
pub struct RnnCellConfig {
    /// Features of the input `I`.
    pub input_size: usize,
    /// Features of the hidden state `H`.
    pub hidden_size: usize,
    /// tanh (default) or ReLU.
    #[config(default = "Nonlinearity::Tanh")]
    pub nonlinearity: Nonlinearity,
    /// Whether the cell has the two biases (default true).
    #[config(default = true)]
    pub bias: bool,
}

/// Configuration of an [`LstmCell`].
#[derive(Config, Debug)]
pub struct LstmCellConfig {
    /// Features of the input `I`.
    pub input_size: usize,
    /// Features of the hidden state `H`.
    pub hidden_size: usize,
    /// Whether the cell has the two biases (default true).
    #[config(default = true)]
    pub bias: bool,
}

/// Configuration of a [`GruCell`].
#[derive(Config, Debug)]
pub struct GruCellConfig {
    /// Features of the input `I`.
    pub input_size: usize,
    /// Features of the hidden state `H`.
    pub hidden_size: usize,
    /// Where the reset gate applies (default: after, PyTorch's).
    #[config(default = "GruReset::After")]
    pub reset: GruReset,
    /// Whether the cell has the two biases (default true).
    #[config(default = true)]
    pub bias: bool,
}

impl Nonlinearity {
    pub(crate) fn kind(self) -> CellKind {
        match self {
            Nonlinearity::Tanh => CellKind::RnnTanh,
            Nonlinearity::Relu => CellKind::RnnRelu,
        }
    }
}

impl GruReset {
    pub(crate) fn kind(self) -> CellKind {
        match self {
            GruReset::After => CellKind::Gru,
            GruReset::Before => CellKind::GruResetBefore,
        }
    }
}

impl RnnCellConfig {
    /// A cell with PyTorch's initialisation (uniform in `±1/√H`).
    pub fn init(&self, device: &Device) -> RnnCell {
        RnnCell::from_parts(
            self.nonlinearity.kind(),
            self.input_size,
            self.hidden_size,
            self.bias,
            device,
        )
    }
}

impl LstmCellConfig {
    /// A cell with PyTorch's initialisation (uniform in `±1/√H`).
    pub fn init(&self, device: &Device) -> LstmCell {
        LstmCell::from_parts(
            CellKind::Lstm,
            self.input_size,
            self.hidden_size,
            self.bias,
            device,
        )
    }
}

impl GruCellConfig {
    /// A cell with PyTorch's initialisation (uniform in `±1/√H`).
    pub fn init(&self, device: &Device) -> GruCell {
        GruCell::from_parts(
            self.reset.kind(),
            self.input_size,
            self.hidden_size,
            self.bias,
            device,
        )
    }
}

impl RnnCell {
    /// One step: `x [B, I]`, `h [B, H]` -> `h' [B, H]`.
    pub fn forward(&self, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let c = h.clone();
        step(self.kind(), &self.tensors(), x, h, c).0
    }
}

impl LstmCell {
    /// One step: `x [B, I]`, `(h, c)` each `[B, H]` -> `(h', c')`.
    pub fn forward(&self, x: Tensor<2>, state: (Tensor<2>, Tensor<2>)) -> (Tensor<2>, Tensor<2>) {
        step(CellKind::Lstm, &self.tensors(), x, state.0, state.1)
    }
}

impl GruCell {
    /// One step: `x [B, I]`, `h [B, H]` -> `h' [B, H]`.
    pub fn forward(&self, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let c = h.clone();
        step(self.kind(), &self.tensors(), x, h, c).0
    }
}
