//! Hand-written operations, each with its own backward, where burn's generic kernels are slow on
//! the CPU (see BENCHMARKS.md for the profile that picked them). Each op keeps burn's own
//! version as the reference: a test compares the two on random inputs, forward and backward, and
//! devices other than Flex use burn's version.

pub mod batch_norm;
pub mod conv;
pub(crate) mod fast_math;
pub(crate) mod gemm;
pub mod max_pool;
pub mod packed_gemm;
pub mod residual;
pub mod scaled_tanh;
pub mod select;
mod shifted;
pub mod sum_pool;
mod winograd;

pub use batch_norm::{batch_norm_layer, batch_norm_relu_layer};
pub use conv::{conv2d_im2col, conv2d_layer, conv2d_s1};
pub use max_pool::{max_pool2d_layer, max_pool2d_window, max_pool2x2, PoolRounding, PoolWindow};
pub use residual::add_relu;
pub use scaled_tanh::scaled_tanh;
pub use select::{
    conv_path, detected_isa, isa, reference_ops, set_conv_path, set_isa_limit, set_reference_ops,
    ConvPath, Isa,
};
pub use sum_pool::sum_pool2x2_affine;

/// A burn layer's padding as `[vertical, horizontal]` when it is symmetric (what deepnet's conv
/// and pool kernels take), `None` otherwise (`Same` with an even kernel, uneven explicit sides).
pub(crate) fn symmetric_padding(padding: &burn::nn::PaddingConfig2d) -> Option<[usize; 2]> {
    use burn::nn::PaddingConfig2d;
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// Whether `device` (or the device an autodiff device wraps) is burn's Flex CPU backend, the
/// one deepnet's own ops are written for.
pub(crate) fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

/// Keeps freed memory in the process for reuse: glibc's malloc otherwise returns large blocks
/// (above 128 KiB at first, then a moving threshold) to the kernel with `munmap`, and the next
/// step of a training run faults every page of its activations and im2col buffers back in. On
/// a ResNet-20 training step (batch 128) page faults were a fifth of the profile, and these two
/// settings took the step from about 1.05 s to 0.80 s (`examples/cnn_step`, BENCHMARKS.md).
///
/// Blocks up to 32 MiB (glibc's largest allowed mmap threshold) come from the heap, and the
/// heap is never trimmed. Call it once at start-up, before threads allocate; elsewhere than
/// glibc it does nothing. The `deepnet` binary, the examples and the benchmarks call it.
///
/// glibc's `mallopt` is not thread-safe, so this safe function is sound by construction: it
/// changes the settings only while the process has a single thread (read from
/// `/proc/self/status`; no other thread can start meanwhile, as only this one could start it),
/// and otherwise leaves them and returns `false`. Returns whether the settings were applied.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let single_thread = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .is_some_and(|n| n.trim() == "1")
        });
        if !single_thread {
            return false;
        }
        // SAFETY: the process has one thread (checked above), this one, so no other thread is
        // inside malloc while mallopt changes its parameters.
        unsafe { tune_allocator_unchecked() };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// [`tune_allocator`] without the single-thread check, for a process whose other threads are
/// known to be idle (a test binary's harness thread waiting on its one test).
///
/// # Safety
///
/// No other thread may call into malloc (allocate, free) while this runs: glibc's `mallopt`
/// changes the allocator's parameters without taking its locks.
pub unsafe fn tune_allocator_unchecked() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the caller keeps every other thread out of malloc (this function's contract).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
