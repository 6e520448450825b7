//! # deepnet
//!
//! The classic deep networks, real and usable, on [burn](https://burn.dev): train, evaluate and
//! inspect LeNet-5 and friends on your own MNIST-format data, on CPU (burn's pure-Rust Flex
//! backend) or GPU (wgpu, feature `wgpu`).
//!
//! - [`data`]: the IDX reader, Fashion-MNIST / MNIST loaders, batching.
//! - [`vision`]: CNN families and the model registry ([`vision::MODELS`]).
//! - [`train`]: the training loop, optimizers, global-norm clipping, checkpoints, reports.
//! - [`recurrent`]: RNN, LSTM, GRU and ConvLSTM cells and layers (PyTorch-compatible), a fused
//!   CPU kernel for them, and gradient-through-time diagnostics.
//! - [`weights`]: PyTorch-style state dicts in safetensors files.
//! - [`ops`]: deepnet's own operations with hand-written backward passes, where burn's CPU
//!   kernels are slow (stride-1 convolution, 2x2 max-pool).
//!
//! The library never prints and never exits; every failure is an [`Error`] whose message
//! names the file, key or argument at fault.

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod ops;
pub mod recurrent;
pub mod train;
pub mod vision;
pub mod weights;

pub use burn;
pub use error::{Error, Result};
