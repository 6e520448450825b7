//! `--device`: which burn backend runs the work.

use burn::tensor::Device;
use clap::ValueEnum;
use deepnet::{Error, Result};

/// A compute device a user can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// burn's pure-Rust CPU backend (Flex).
    Cpu,
    /// GPU through burn's wgpu backend (Vulkan); needs the `wgpu` cargo feature.
    Wgpu,
    /// Not available: burn's CUDA backend cannot be built offline (see README); use wgpu.
    Cuda,
}

impl DeviceArg {
    /// The burn device, or an error saying how to get it.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceArg::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            DeviceArg::Wgpu => Err(Error::invalid(
                "--device",
                "this deepnet was built without GPU support; rebuild with `cargo build --release --features wgpu`",
            )),
            DeviceArg::Cuda => Err(Error::invalid(
                "--device",
                "cuda is not available: burn's CUDA backend downloads an LLVM bundle at build time and cannot be built here; use --device wgpu (built with --features wgpu) for NVIDIA GPUs",
            )),
        }
    }
}
