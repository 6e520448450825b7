//! Hand-written operations, each with its own backward, where burn's generic kernels are slow on
//! the CPU (see BENCHMARKS.md for the profile that picked them). Each op keeps burn's own
//! version as the reference: a test compares the two on random inputs, forward and backward, and
//! devices other than Flex use burn's version.

pub mod conv;
pub(crate) mod gemm;
pub mod max_pool;
pub mod packed_gemm;

pub use conv::{conv2d_layer, conv2d_s1};
pub use max_pool::max_pool2x2;

use std::sync::OnceLock;

/// Whether the environment variable `DEEPNET_REFERENCE_OPS=1` asks for burn's own operations
/// instead of deepnet's: the benchmarks use it to measure what each op gains, in one run.
pub fn reference_ops() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("DEEPNET_REFERENCE_OPS").is_ok_and(|v| v == "1"))
}

/// Whether `device` (or the device an autodiff device wraps) is burn's Flex CPU backend, the
/// one deepnet's own ops are written for.
pub(crate) fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
