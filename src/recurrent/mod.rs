//! Recurrent networks: the lecture's cells (Elman RNN, LSTM, GRU in both formulations,
//! ConvLSTM), stacked and bidirectional layers with PyTorch's semantics and parameter names,
//! and the diagnostics that show why gates matter.
//!
//! - [`cell`]: one step of each cell, from the equations, with burn ops (the reference).
//! - [`layer`]: `Rnn`, `Lstm`, `Gru` over whole sequences (lengths, directions, stacking).
//! - `kernel` + [`op`]: the fused CPU kernel the layers run on burn-flex, with its own
//!   backward.
//! - [`conv_lstm`]: ConvLSTM (Shi et al. 2015).
//! - [`diagnostics`]: ‖∂L/∂h_t‖ through time and the spectrum of the recurrent matrix.
//! - [`tbptt`]: truncated backpropagation through time.

pub mod cell;
pub mod conv_lstm;
pub mod diagnostics;
mod kernel;
pub mod layer;
pub mod op;
pub mod tbptt;

pub use cell::{
    CellKind, CellTensors, CellType, GruCell, GruCellConfig, GruReset, LstmCell, LstmCellConfig,
    Nonlinearity, RnnCell, RnnCellConfig,
};
pub use conv_lstm::{ConvLstm, ConvLstmCell, ConvLstmConfig, ConvLstmState};
pub use layer::{Gru, GruConfig, Lstm, LstmConfig, LstmState, Rnn, RnnConfig};
pub use op::Implementation;
