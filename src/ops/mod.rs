//! Hand-written operations, each with its own backward, where burn's generic kernels are slow on
//! the CPU (see BENCHMARKS.md for the profile that picked them). Each op keeps burn's own
//! version as the reference: a test compares the two on random inputs, forward and backward, and
//! devices other than Flex use burn's version.

pub mod max_pool;

pub use max_pool::max_pool2x2;
