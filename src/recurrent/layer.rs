//! Recurrent layers `Rnn`, `Lstm`, `Gru`: stacked, optionally bidirectional, with dropout
//! between layers, batch-first or time-first, initial state in and final state out, and
//! variable-length batches. Semantics and parameter names are PyTorch's `nn.RNN` / `nn.LSTM` /
//! `nn.GRU` ones (`weight_ih_l{k}`, `..._reverse`), so a torch state dict loads as is
//! ([`Lstm::load_torch`]).
//!
//! Why not burn's own `Lstm`/`Gru`: they have no stacking, no dropout between layers, no
//! variable lengths, store one Linear per gate, and run at 0.23x PyTorch's speed here
//! (../shared/PERFORMANCE.md). Each (layer, direction) here is one call of the fused kernel
//! (`super::kernel`) on the CPU.
//!
//! Variable lengths follow `pack_padded_sequence`: row `b` of the batch has `lengths[b]` valid
//! steps (any order, each in `1..=T`); outputs at padded steps are zero, and the final state of
//! each direction is the state after that row's last valid step (for the reverse direction:
//! after step 0).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use super::cell::{CellAccess, CellKind, GruCell, GruReset, LstmCell, Nonlinearity, RnnCell};
use super::op::{run_direction, Implementation};
use crate::error::{Error, Result};
use crate::weights::StateDict;

/// The final state of an [`Lstm`]: `h` and `c`, each `[num_layers · directions, B, H]`
/// (PyTorch's `(h_n, c_n)`; row `2k + 1` is layer `k`'s reverse direction).
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden states.
    pub h: Tensor<3>,
    /// Cell states.
    pub c: Tensor<3>,
}

impl LstmState {
    /// The same values cut from the autodiff graph: what truncated backpropagation through time
    /// carries from one chunk to the next.
    pub fn detach(self) -> Self {
        LstmState {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// Shape options shared by the three layers.
struct Shape {
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    batch_first: bool,
    bidirectional: bool,
}

impl Shape {
    fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

/// The PyTorch name suffix of layer `layer`, direction `dir`.
fn suffix(layer: usize, dir: usize) -> String {
    format!("_l{layer}{}", if dir == 1 { "_reverse" } else { "" })
}

/// Checks `input`, `lengths` and the initial states; returns `(T, B)`.
fn check(
    shape: &Shape,
    input: &Tensor<3>,
    lengths: Option<&[usize]>,
    states: [Option<&Tensor<3>>; 2],
) -> Result<(usize, usize)> {
    let dims = input.dims();
    let (t, b) = if shape.batch_first {
        (dims[1], dims[0])
    } else {
        (dims[0], dims[1])
    };
    let layout = if shape.batch_first {
        "[batch, time, features]"
    } else {
        "[time, batch, features]"
    };
    if dims[2] != shape.input_size {
        return Err(Error::invalid(
            "input",
            format!(
                "it has {} features per step (shape {dims:?} read as {layout}); the layer expects input_size = {}",
                dims[2], shape.input_size
            ),
        ));
    }
    if t == 0 || b == 0 {
        return Err(Error::invalid(
            "input",
            format!("shape {dims:?} ({layout}) is empty"),
        ));
    }
    if let Some(lengths) = lengths {
        if lengths.len() != b {
            return Err(Error::invalid(
                "lengths",
                format!("{} lengths for a batch of {b}", lengths.len()),
            ));
        }
        for (row, &l) in lengths.iter().enumerate() {
            if l == 0 {
                return Err(Error::invalid(
                    "lengths",
                    format!("lengths[{row}] is 0; every sequence needs at least one step"),
                ));
            }
            if l > t {
                return Err(Error::invalid(
                    "lengths",
                    format!("lengths[{row}] = {l} is longer than the sequence (T = {t})"),
                ));
            }
        }
    }
    let expected = [shape.num_layers * shape.directions(), b, shape.hidden_size];
    for (name, state) in ["h0", "c0"].iter().zip(states) {
        if let Some(s) = state {
            if s.dims() != expected {
                return Err(Error::invalid(
                    *name,
                    format!(
                        "shape {:?}; expected [num_layers · directions, batch, hidden] = {expected:?}",
                        s.dims()
                    ),
                ));
            }
        }
    }
    Ok((t, b))
}

/// Runs the stack. Returns the output (in the input's layout) and the final `h` and `c`
/// (`[L·D, B, H]`).
#[allow(clippy::too_many_arguments)]
fn run<C: CellAccess>(
    shape: &Shape,
    cells: &[C],
    dropout: &Dropout,
    input: Tensor<3>,
    lengths: Option<&[usize]>,
    h0: Option<Tensor<3>>,
    c0: Option<Tensor<3>>,
    implementation: Implementation,
) -> Result<(Tensor<3>, Tensor<3>, Tensor<3>)> {
    let (t, b) = check(shape, &input, lengths, [h0.as_ref(), c0.as_ref()])?;
    let device = input.device();
    let dirs = shape.directions();
    let hidden = shape.hidden_size;
    let lengths: Vec<usize> = lengths.map_or_else(|| vec![t; b], <[usize]>::to_vec);
    let zeros = || Tensor::<3>::zeros([shape.num_layers * dirs, b, hidden], &device);
    let h0 = h0.unwrap_or_else(zeros);
    let c0 = c0.unwrap_or_else(zeros);
    let mut x = if shape.batch_first {
        input.swap_dims(0, 1) // [T, B, I]
    } else {
        input
    };
    let (mut hs, mut cs) = (Vec::new(), Vec::new());
    for layer in 0..shape.num_layers {
        if layer > 0 {
            x = dropout.forward(x);
        }
        let mut outputs = Vec::with_capacity(dirs);
        for dir in 0..dirs {
            let k = layer * dirs + dir;
            let cell = &cells[k];
            let state = |s: &Tensor<3>| s.clone().narrow(0, k, 1).reshape([b, hidden]); // [B, H]
            let out = run_direction(
                cell.kind(),
                &cell.tensors(),
                x.clone(),
                state(&h0),
                state(&c0),
                &lengths,
                dir == 1,
                implementation,
            );
            outputs.push(out.output); // [T, B, H]
            hs.push(out.h);
            cs.push(out.c);
        }
        x = if dirs == 1 {
            outputs.pop().unwrap_or(x)
        } else {
            Tensor::cat(outputs, 2) // [T, B, 2H]
        };
    }
    let out = if shape.batch_first {
        x.swap_dims(0, 1) // [B, T, D·H]
    } else {
        x
    };
    Ok((out, Tensor::stack(hs, 0), Tensor::stack(cs, 0)))
}

fn build<C: CellAccess>(shape: &Shape, kind: CellKind, bias: bool, device: &Device) -> Vec<C> {
    let dirs = shape.directions();
    (0..shape.num_layers * dirs)
        .map(|k| {
            let input = if k < dirs {
                shape.input_size
            } else {
                dirs * shape.hidden_size
            };
            C::from_parts(kind, input, shape.hidden_size, bias, device)
        })
        .collect()
}

fn load_torch<C: CellAccess>(shape: &Shape, cells: &[C], dict: &StateDict) -> Result<Vec<C>> {
    let dirs = shape.directions();
    let mut used = Vec::new();
    let mut loaded = Vec::with_capacity(cells.len());
    for (k, cell) in cells.iter().enumerate() {
        let sfx = suffix(k / dirs, k % dirs);
        let w = cell.tensors();
        let device = w.weight_ih.device();
        let name = |p: &str| format!("{p}{sfx}");
        let w_ih = dict.tensor(&name("weight_ih"), w.weight_ih.dims(), &device)?;
        let w_hh = dict.tensor(&name("weight_hh"), w.weight_hh.dims(), &device)?;
        used.extend([name("weight_ih"), name("weight_hh")]);
        let (b_ih, b_hh) = if cell.has_bias() {
            used.extend([name("bias_ih"), name("bias_hh")]);
            (
                Some(dict.tensor(&name("bias_ih"), w.bias_ih.dims(), &device)?),
                Some(dict.tensor(&name("bias_hh"), w.bias_hh.dims(), &device)?),
            )
        } else {
            (None, None)
        };
        loaded.push(cell.with_tensors(w_ih, w_hh, b_ih, b_hh));
    }
    dict.check_no_unexpected(used.iter().map(String::as_str))?;
    Ok(loaded)
}

fn torch_state_dict<C: CellAccess>(shape: &Shape, cells: &[C]) -> StateDict {
    let dirs = shape.directions();
    let mut dict = StateDict::new("model");
    for (k, cell) in cells.iter().enumerate() {
        let sfx = suffix(k / dirs, k % dirs);
        let w = cell.tensors();
        dict.insert(format!("weight_ih{sfx}"), w.weight_ih);
        dict.insert(format!("weight_hh{sfx}"), w.weight_hh);
        if cell.has_bias() {
            dict.insert(format!("bias_ih{sfx}"), w.bias_ih);
            dict.insert(format!("bias_hh{sfx}"), w.bias_hh);
        }
    }
    dict
}

macro_rules! layer {
    (
        $(#[$doc:meta])* $name:ident, $config:ident, $cell:ident,
        { $($(#[$fdoc:meta])* $field:ident : $fty:ty = $fdefault:expr),* },
        |$cfg:ident| $kind:expr
    ) => {
        $(#[$doc])*
        #[derive(Module, Debug)]
        pub struct $name {
            /// One cell per layer and direction, index `layer · directions + direction`.
            pub cells: Vec<$cell>,
            /// Dropout on the outputs of every layer but the last (training only).
            pub dropout: Dropout,
            /// Features per input step.
            pub input_size: usize,
            /// Features of the hidden state of each direction.
            pub hidden_size: usize,
            /// Stacked layers.
            pub num_layers: usize,
            /// Input and output are `[batch, time, features]` (else `[time, batch, features]`).
            pub batch_first: bool,
            /// A second direction runs the sequence backwards; outputs are concatenated.
            pub bidirectional: bool,
        }

        /// Configuration of a recurrent layer (PyTorch's arguments and defaults).
        #[derive(Config, Debug)]
        pub struct $config {
            /// Features per input step.
            pub input_size: usize,
            /// Features of the hidden state.
            pub hidden_size: usize,
            /// Stacked layers (default 1).
            #[config(default = 1)]
            pub num_layers: usize,
            /// Whether every cell has its two biases (default true).
            #[config(default = true)]
            pub bias: bool,
            /// `[batch, time, features]` input and output (default false: `[time, batch,
            /// features]`, as in PyTorch).
            #[config(default = false)]
            pub batch_first: bool,
            /// Dropout probability on the outputs of every layer but the last (default 0).
            #[config(default = 0.0)]
            pub dropout: f64,
            /// Run a second, reversed direction (default false).
            #[config(default = false)]
            pub bidirectional: bool,
            $($(#[$fdoc])* #[config(default = $fdefault)] pub $field: $fty,)*
        }

        impl $config {
            /// The layer, with PyTorch's initialisation (uniform in `±1/√H`).
            pub fn init(&self, device: &Device) -> $name {
                let $cfg = self;
                let kind: CellKind = $kind;
                let shape = Shape {
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    num_layers: self.num_layers.max(1),
                    batch_first: self.batch_first,
                    bidirectional: self.bidirectional,
                };
                $name {
                    cells: build(&shape, kind, self.bias, device),
                    dropout: DropoutConfig::new(self.dropout).init(),
                    input_size: shape.input_size,
                    hidden_size: shape.hidden_size,
                    num_layers: shape.num_layers,
                    batch_first: shape.batch_first,
                    bidirectional: shape.bidirectional,
                }
            }
        }

        impl $name {
            fn shape(&self) -> Shape {
                Shape {
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    num_layers: self.num_layers,
                    batch_first: self.batch_first,
                    bidirectional: self.bidirectional,
                }
            }

            /// The recurrence of this layer's cells.
            pub fn kind(&self) -> CellKind {
                self.cells[0].kind()
            }

            /// Loads a PyTorch state dict (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
            /// `bias_hh_l0`, ..., `_reverse` for the backward direction). A missing,
            /// mis-shaped or unexpected tensor is an error naming it.
            pub fn load_torch(&self, dict: &StateDict) -> Result<Self> {
                let cells = load_torch(&self.shape(), &self.cells, dict)?;
                Ok($name {
                    cells,
                    dropout: self.dropout.clone(),
                    ..*self
                })
            }

            /// The weights under PyTorch's names, as [`load_torch`](Self::load_torch) reads them.
            pub fn torch_state_dict(&self) -> StateDict {
                torch_state_dict(&self.shape(), &self.cells)
            }
        }
    };
}

layer!(
    /// Elman RNN layer (PyTorch `nn.RNN`); each step is an [`RnnCell`].
    Rnn,
    RnnConfig,
    RnnCell,
    {
        /// tanh (default) or ReLU.
        nonlinearity: Nonlinearity = "Nonlinearity::Tanh"
    },
    |c| c.nonlinearity.kind()
);

layer!(
    /// LSTM layer (PyTorch `nn.LSTM`); each step is an [`LstmCell`].
    Lstm,
    LstmConfig,
    LstmCell,
    {},
    |_c| CellKind::Lstm
);

layer!(
    /// GRU layer (PyTorch `nn.GRU` with the default reset-after; the lecture's reset-before
    /// with `reset = GruReset::Before`); each step is a [`GruCell`].
    Gru,
    GruConfig,
    GruCell,
    {
        /// Where the reset gate applies (default: after, PyTorch's).
        reset: GruReset = "GruReset::After"
    },
    |c| c.reset.kind()
);

/// `forward` and `forward_with` of the layers whose state is `h` alone.
macro_rules! forward_h {
    ($($name:ident),*) => {$(
        impl $name {
            /// `input [T, B, I]` (or `[B, T, I]` with `batch_first`), optional
            /// `h0 [L·D, B, H]` -> `(output [T, B, D·H], h_n [L·D, B, H])`.
            pub fn forward(
                &self,
                input: Tensor<3>,
                h0: Option<Tensor<3>>,
            ) -> Result<(Tensor<3>, Tensor<3>)> {
                self.forward_with(input, None, h0, Implementation::Auto)
            }

            /// [`forward`](Self::forward) with per-row `lengths` (padded steps change nothing,
            /// their outputs are zero) and a choice of implementation.
            pub fn forward_with(
                &self,
                input: Tensor<3>,
                lengths: Option<&[usize]>,
                h0: Option<Tensor<3>>,
                implementation: Implementation,
            ) -> Result<(Tensor<3>, Tensor<3>)> {
                let (out, h, _) = run(
                    &self.shape(),
                    &self.cells,
                    &self.dropout,
                    input,
                    lengths,
                    h0,
                    None,
                    implementation,
                )?;
                Ok((out, h))
            }
        }
    )*};
}

forward_h!(Rnn, Gru);

impl Lstm {
    /// `input [T, B, I]` (or `[B, T, I]` with `batch_first`), optional initial state (each
    /// `[L·D, B, H]`) -> `(output [T, B, D·H], final state)`.
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
    ) -> Result<(Tensor<3>, LstmState)> {
        self.forward_with(input, None, state, Implementation::Auto)
    }

    /// [`forward`](Self::forward) with per-row `lengths` (padded steps change nothing, their
    /// outputs are zero) and a choice of implementation.
    pub fn forward_with(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
        state: Option<LstmState>,
        implementation: Implementation,
    ) -> Result<(Tensor<3>, LstmState)> {
        let (h0, c0) = match state {
            Some(s) => (Some(s.h), Some(s.c)),
            None => (None, None),
        };
        let (out, h, c) = run(
            &self.shape(),
            &self.cells,
            &self.dropout,
            input,
            lengths,
            h0,
            c0,
            implementation,
        )?;
        Ok((out, LstmState { h, c }))
    }
}
