//! # deepnet
//!
//! The classic deep networks, real and usable, on [burn](https://burn.dev): train, evaluate and
//! inspect LeNet-5 and friends on your own MNIST-format data, on CPU (burn's pure-Rust Flex
//! backend) or GPU (wgpu, feature `wgpu`).
//!
//! - [`io`]: atomic writes and file formats (IDX, `.npy`, safetensors headers, TensorBoard).
//! - [`plot`]: charts and image grids as PNG.
//! - [`data`]: Fashion-MNIST / MNIST loaders, image sources, augmentation, batching.
//! - [`nn`]: soft attention and the recurrent attention decoder (teacher forcing, greedy,
//!   beam search).
//! - [`train`]: the task trait and the one training loop, optimizers, global-norm clipping,
//!   checkpoints, metrics, TensorBoard files.
//! - [`models`]: the networks: CNN families and FCN with the model registry
//!   ([`models::vision`]), and the models of the sequence, video and instance tasks.
//! - [`tasks`]: the tasks trained on that loop (image classification and transfer, language
//!   identification, character language model, grapheme-to-phoneme, memory benchmarks,
//!   captioning, segmentation, video prediction, instance segmentation).
//! - [`inspect`]: what trained networks learned, as pictures.
//! - [`recurrent`]: RNN, LSTM, GRU and ConvLSTM cells and layers (PyTorch-compatible), a fused
//!   CPU kernel for them, and gradient-through-time diagnostics.
//! - [`weights`]: PyTorch-style state dicts in safetensors files.
//! - [`ops`]: deepnet's own operations with hand-written backward passes, where burn's CPU
//!   kernels are slow (stride-1 convolution, 2x2 max-pool).
//!
//! The library never prints and never exits; every failure is an [`Error`] whose message
//! names the file, key or argument at fault.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod data;
pub mod error;
pub mod inspect;
pub mod io;
pub mod models;
pub mod nn;
pub mod ops;
pub mod plot;
pub mod recurrent;
pub mod tasks;
pub mod train;
pub mod weights;

pub use burn;
pub use error::{Error, Result};
