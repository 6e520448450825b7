//! Which implementation deepnet's ops run, settable from code.
//!
//! Three switches, each read on every call (a relaxed atomic load) so that a test or a
//! benchmark can flip them in one process: the speed gate (`tests/speed_gate.rs`) times
//! deepnet's ops against burn's in interleaved pairs, and the kernel tests run every code path
//! the CPU supports. The environment variables `DEEPNET_REFERENCE_OPS=1` and
//! `DEEPNET_NO_AVX512=1` still give the initial values, so the bench scripts and the `deepnet`
//! binary can be switched from outside.
//!
//! - [`set_reference_ops`]: burn's own operations instead of deepnet's;
//! - [`set_isa_limit`]: the widest instruction set the kernels may use (to run the AVX2 or the
//!   portable kernels on an AVX-512 CPU);
//! - [`set_conv_path`]: the convolution's lowering, chosen by shape unless forced.
//!
//! The switches are process-wide: code that flips them while other threads run ops changes
//! which kernels those ops use, never their results beyond rounding.

use std::sync::atomic::{AtomicU8, Ordering};

/// A boolean switch whose first value comes from an environment variable (`1` means on).
struct EnvSwitch {
    /// 0: not read yet, 1: off, 2: on.
    state: AtomicU8,
    var: &'static str,
}

impl EnvSwitch {
    const fn new(var: &'static str) -> Self {
        EnvSwitch {
            state: AtomicU8::new(0),
            var,
        }
    }

    fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let on = std::env::var(self.var).is_ok_and(|v| v == "1");
                // A concurrent set() wins over the environment.
                let _ = self.state.compare_exchange(
                    0,
                    if on { 2 } else { 1 },
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                self.state.load(Ordering::Relaxed) == 2
            }
        }
    }

    fn set(&self, on: bool) {
        self.state.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
}

static REFERENCE_OPS: EnvSwitch = EnvSwitch::new("DEEPNET_REFERENCE_OPS");
static NO_AVX512: EnvSwitch = EnvSwitch::new("DEEPNET_NO_AVX512");

/// Whether burn's own operations run instead of deepnet's (`DEEPNET_REFERENCE_OPS=1` at start,
/// or [`set_reference_ops`]): the benchmarks and the speed gate use it to measure what each op
/// gains, in one run.
pub fn reference_ops() -> bool {
    REFERENCE_OPS.get()
}

/// Switches between burn's own operations (`true`) and deepnet's (`false`) for every op called
/// from now on, in every thread.
pub fn set_reference_ops(on: bool) {
    REFERENCE_OPS.set(on);
}

/// The instruction sets deepnet's kernels are written for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust loops (any CPU).
    Portable,
    /// x86-64 AVX2 and FMA.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
}

/// The widest instruction set this CPU supports (checked once).
pub fn detected_isa() -> Isa {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// 0: no limit set (the environment decides), else `Isa as u8 + 1`.
static ISA_LIMIT: AtomicU8 = AtomicU8::new(0);

/// Caps the instruction set of deepnet's kernels at `limit` (they never use more than the CPU
/// has): `Isa::Avx2` runs the AVX2 kernels on an AVX-512 CPU, `Isa::Portable` the plain loops.
/// `DEEPNET_NO_AVX512=1` sets `Isa::Avx2` at start.
pub fn set_isa_limit(limit: Isa) {
    ISA_LIMIT.store(limit as u8 + 1, Ordering::Relaxed);
}

/// The instruction set deepnet's kernels use now: the CPU's, capped by [`set_isa_limit`].
pub fn isa() -> Isa {
    let limit = match ISA_LIMIT.load(Ordering::Relaxed) {
        1 => Isa::Portable,
        2 => Isa::Avx2,
        3 => Isa::Avx512,
        _ if NO_AVX512.get() => Isa::Avx2,
        _ => Isa::Avx512,
    };
    detected_isa().min(limit)
}

/// Runs `f` compiled for the widest instruction set [`isa`] allows now: plain loops written for
/// the compiler to vectorize (the transforms of the Winograd lowering, the max-pool) get AVX2 or
/// AVX-512 registers, where the crate itself is built for baseline x86-64 (SSE2) and so runs
/// them 4 lanes wide. `f` must be inlined into the copy of this function per instruction set:
/// pass it as `vectorized(#[inline(always)] || ...)`, and mark what it calls `#[inline]` or
/// `#[inline(always)]`. A closure without the attribute is usually left out of line, a
/// function of its own compiled for baseline x86-64. The max-pool, the row-wise Winograd
/// transforms and the recurrent gate loops still run that way: forced into AVX2 they measured
/// slower on an AVX2-only Zen 1 (ResNet-18 inference at batch 1 0.96x, batch 16 0.98x, the
/// LSTM step at hidden 64 0.94x against e8fbf53; `step_ab-20261129-112930.json` and 6
/// alternating runs of `rnn_step` in `docs/avx2-session-ab/`), so they stay as they were
/// measured everywhere before. The
/// shifted planes, the weight gradient's groups and the channels-last Winograd transforms
/// carry the attribute. Call it inside each parallel task (rayon's worker threads run their
/// closures outside it).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: isa() never exceeds what the CPU reports (detected_isa): AVX-512F, whose
        // CPUs all have AVX2 and FMA.
        Isa::Avx512 => return unsafe { with_avx512(f) },
        // SAFETY: as above, the CPU has AVX2 and FMA.
        Isa::Avx2 => return unsafe { with_avx2(f) },
        Isa::Portable => {}
    }
    f()
}

/// `f` compiled with AVX-512F (every AVX-512 CPU also has AVX2 and FMA).
///
/// # Safety
///
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` compiled with AVX2 and FMA.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// How a convolution (`super::conv`) is lowered to matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// Chosen by shape, per convolution (the default): see `super::conv`'s module docs.
    Auto,
    /// The packed micro-kernel for the forward, and the input gradient as the convolution of
    /// `∂L/∂y` with the flipped weights (where the padding allows): what every convolution ran
    /// before the choice by shape. Slow for LeNet-5's small convolutions; kept to compare, and
    /// for the speed gate's self-test.
    Packed,
    /// im2col and the `gemm` crate, image by image, the input gradient as `Wᵀ·∂L/∂y` then
    /// col2im.
    Gemm,
    /// Winograd's F(2x2, 3x3) for every 3x3 stride-1 convolution, forward and (as the
    /// convolution with the flipped weights) input gradient; the choice by shape for the others.
    /// Kept to compare with the other lowerings.
    Winograd,
    /// On an AVX2 or AVX-512 CPU, every convolution's forward on shifted copies of the image
    /// (`super::shifted`, no im2col), and the input gradient of the stride-1 ones as the
    /// flipped convolution there too; the weight gradient as by shape. The choice by shape on
    /// other CPUs.
    Shifted,
}

/// 0: Auto, 1: Packed, 2: Gemm, 3: Winograd, 4: Shifted.
static CONV_PATH: AtomicU8 = AtomicU8::new(0);

/// Forces the convolution's lowering for every convolution from now on (`ConvPath::Auto`
/// goes back to the choice by shape).
pub fn set_conv_path(path: ConvPath) {
    CONV_PATH.store(path as u8, Ordering::Relaxed);
}

/// The convolution lowering in force (see [`set_conv_path`]).
pub fn conv_path() -> ConvPath {
    match CONV_PATH.load(Ordering::Relaxed) {
        1 => ConvPath::Packed,
        2 => ConvPath::Gemm,
        3 => ConvPath::Winograd,
        4 => ConvPath::Shifted,
        _ => ConvPath::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_never_exceeds_the_cpu_or_the_limit() {
        // Only this test touches the ISA limit in the library's unit tests.
        for limit in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            set_isa_limit(limit);
            assert!(isa() <= limit && isa() <= detected_isa());
        }
        set_isa_limit(Isa::Avx512);
        assert_eq!(isa(), detected_isa());
    }
}
