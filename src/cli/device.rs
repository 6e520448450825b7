//! `--device cpu|wgpu|cuda[:N]`: which burn backend runs the work.
//!
//! The GPU backends are cargo features (`wgpu`, `cuda`) so that the default build stays a
//! pure-Rust CPU build; a device whose feature is missing is an error that says how to get it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use deepnet::{Error, Result};

/// A compute device a user can name: `cpu`, `wgpu` or `cuda[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceArg {
    /// burn's pure-Rust CPU backend (Flex).
    #[default]
    Cpu,
    /// GPU through burn's wgpu backend (Vulkan, Metal or DX12); needs the `wgpu` cargo feature.
    Wgpu,
    /// NVIDIA GPU number N through burn's CUDA backend; needs the `cuda` cargo feature
    /// (built offline by scripts/cuda_build.sh).
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "wgpu" => Ok(DeviceArg::Wgpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(DeviceArg::Cuda(index)),
                _ => Err(format!(
                    "'{s}' is not a device: use cpu, wgpu, cuda or cuda:N"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceArg::Cpu => write!(f, "cpu"),
            DeviceArg::Wgpu => write!(f, "wgpu"),
            DeviceArg::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceArg {
    /// The burn device, or an error saying how to get it. A GPU device is tried once with a
    /// one-number tensor first, so that a machine without the GPU or its driver gets one clear
    /// line here instead of a panic in the middle of the work.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::flex()),
            DeviceArg::Wgpu => probe(
                wgpu()?,
                "wgpu",
                "no usable GPU adapter (Vulkan, Metal or DX12 driver)",
            ),
            DeviceArg::Cuda(index) => probe(
                cuda(index)?,
                &self.to_string(),
                "no usable CUDA device (the NVIDIA driver's libcuda, and a GPU with that number)",
            ),
        }
    }
}

/// `device` if a tensor can be made on it and read back; otherwise an error naming `what`.
/// burn's GPU runtimes report a missing adapter or driver by panicking on their device thread,
/// so the probe catches the unwind and keeps the default panic message off the terminal.
fn probe(device: Device, name: &str, what: &str) -> Result<Device> {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe_device = device.clone();
    let result = std::panic::catch_unwind(move || {
        burn::tensor::Tensor::<1>::from_floats([1.0], &probe_device)
            .into_data()
            .try_to_vec::<f32>()
            .ok()
    });
    std::panic::set_hook(quiet);
    match result {
        Ok(Some(v)) if v == [1.0] => Ok(device),
        _ => Err(Error::invalid(
            "--device",
            format!("{name}: {what} was found on this machine"),
        )),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    Ok(Device::wgpu(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    Err(Error::invalid(
        "--device",
        "this deepnet was built without wgpu; rebuild with `cargo build --release --features wgpu`",
    ))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    Err(Error::invalid(
        "--device",
        "this deepnet was built without CUDA; build it with scripts/cuda_build.sh (offline LLVM), or use --device wgpu with `--features wgpu`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for (text, device) in [
            ("cpu", DeviceArg::Cpu),
            ("wgpu", DeviceArg::Wgpu),
            ("cuda:0", DeviceArg::Cuda(0)),
            ("cuda:3", DeviceArg::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceArg>(), Ok(device));
            assert_eq!(device.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceArg>(), Ok(DeviceArg::Cuda(0)));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            assert!(bad.parse::<DeviceArg>().is_err(), "{bad}");
        }
    }
}
