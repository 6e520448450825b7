//! Truncated backpropagation through time (Williams & Peng 1990).
//!
//! Full BPTT backpropagates through every step of the unrolled graph: memory grows with the
//! sequence, and one update needs the whole sequence. Truncated BPTT cuts a long sequence into
//! chunks of `k` steps: the state is *carried* from one chunk to the next (the forward pass sees
//! the whole history) but *detached* from the graph (the backward pass stops at the chunk
//! boundary), and the parameters are updated after each chunk. Gradients then span at most
//! `k` steps: dependencies longer than that can be used but not learned.
//!
//! ```no_run
//! # use deepnet::recurrent::{LstmConfig, tbptt::truncated_bptt};
//! # use burn::tensor::{Device, Tensor};
//! # fn main() -> deepnet::Result<()> {
//! let device = Device::flex().autodiff();
//! let lstm = LstmConfig::new(8, 32).init(&device);
//! let sequence = Tensor::<3>::zeros([1000, 4, 8], &device); // [T, B, I]
//! let last = truncated_bptt(&sequence, 50, None, |chunk, state| {
//!     let (out, state) = lstm.forward(chunk, state)?;
//!     let loss = out.powf_scalar(2.0).mean(); // your loss
//!     let _grads = loss.backward(); // then an optimizer step
//!     Ok(Some(state))
//! })?;
//! # let _ = last; Ok(()) }
//! ```

use burn::tensor::Tensor;

use super::conv_lstm::ConvLstmState;
use super::layer::LstmState;
use crate::error::{Error, Result};

/// A recurrent state that can be cut from the autodiff graph.
pub trait Detach {
    /// The same values, with no history: gradients stop here.
    fn detach(self) -> Self;
}

impl<const D: usize> Detach for Tensor<D> {
    fn detach(self) -> Self {
        Tensor::detach(self)
    }
}

impl Detach for LstmState {
    fn detach(self) -> Self {
        LstmState::detach(self)
    }
}

impl Detach for ConvLstmState {
    fn detach(self) -> Self {
        ConvLstmState {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// No state: tasks without recurrence carry nothing between chunks.
impl Detach for () {
    fn detach(self) -> Self {}
}

impl<S: Detach> Detach for Option<S> {
    fn detach(self) -> Self {
        self.map(Detach::detach)
    }
}

/// Runs `chunk_fn` over consecutive chunks of `chunk_len` steps of the time-major `sequence`
/// (`[T, B, F]`; the last chunk may be shorter), carrying the state it returns into the next
/// chunk, detached. `chunk_fn` does the forward, the loss, the backward and the update of one
/// chunk. Returns the state after the last chunk.
pub fn truncated_bptt<S, F>(
    sequence: &Tensor<3>,
    chunk_len: usize,
    initial: S,
    mut chunk_fn: F,
) -> Result<S>
where
    S: Detach,
    F: FnMut(Tensor<3>, S) -> Result<S>,
{
    if chunk_len == 0 {
        return Err(Error::invalid("chunk length", "must be at least 1 step"));
    }
    let t = sequence.dims()[0];
    let mut state = initial.detach();
    let mut start = 0;
    while start < t {
        let len = chunk_len.min(t - start);
        let chunk = sequence.clone().narrow(0, start, len); // [len, B, F]
        state = chunk_fn(chunk, state)?.detach();
        start += len;
    }
    Ok(state)
}
