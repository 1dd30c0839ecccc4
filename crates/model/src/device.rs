//! Choosing the device to run on, with a clear reason when CUDA cannot be used.

use std::fmt;
use std::str::FromStr;

use tch::{Cuda, Device};

/// The device a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// The first CUDA device if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device number `N` (`cuda` alone means `cuda:0`).
    Cuda(usize),
}

/// Why a requested device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The text names no device.
    #[error("unknown device {text:?}: expected auto, cpu, cuda or cuda:N")]
    Unparsable {
        /// The text given.
        text: String,
    },
    /// CUDA was asked for but cannot be used.
    #[error("{requested} requested, but CUDA is unavailable: {reason}")]
    CudaUnavailable {
        /// The request, as text.
        requested: String,
        /// Why: libtorch without CUDA, no device, or too few devices.
        reason: String,
    },
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unparsable = || DeviceError::Unparsable { text: text.to_owned() };
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(unparsable)?;
                index.parse().map(Self::Cuda).map_err(|_| unparsable())
            }
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// What this process's libtorch can see of CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaInfo {
    /// Whether libtorch was built with (and loaded) its CUDA library.
    pub has_cuda_support: bool,
    /// How many CUDA devices are visible.
    pub n_devices: usize,
}

impl CudaInfo {
    /// Asks libtorch.
    pub fn probe() -> Self {
        let has_cuda_support = tch::utils::has_cuda();
        let n_devices = if has_cuda_support { Cuda::device_count().max(0) as usize } else { 0 };
        Self { has_cuda_support, n_devices }
    }
}

impl DeviceRequest {
    /// Resolves the request against what libtorch sees on this machine.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        self.resolve_with(CudaInfo::probe())
    }

    /// Resolves the request against the given CUDA facts (testable without a GPU).
    pub fn resolve_with(self, cuda: CudaInfo) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if cuda.n_devices > 0 => Ok(Device::Cuda(0)),
            Self::Auto => Ok(Device::Cpu),
            Self::Cuda(index) if index < cuda.n_devices => Ok(Device::Cuda(index)),
            Self::Cuda(_) => {
                let reason = if !cuda.has_cuda_support {
                    "this program's libtorch has no CUDA support (a CPU-only libtorch, or libtorch_cuda was not linked)"
                        .to_owned()
                } else if cuda.n_devices == 0 {
                    "libtorch has CUDA support but sees no CUDA device (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them)"
                        .to_owned()
                } else {
                    format!("only {} CUDA device(s) are visible, numbered from 0", cuda.n_devices)
                };
                Err(DeviceError::CudaUnavailable { requested: self.to_string(), reason })
            }
        }
    }
}

/// A short human name for a device: `cpu` or `cuda:N (<GPU name>)` where known.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_rejects_others() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let error = bad.parse::<DeviceRequest>().unwrap_err();
            assert!(error.to_string().contains("expected auto, cpu, cuda or cuda:N"), "{bad}: {error}");
        }
    }

    #[test]
    fn cuda_requests_fail_with_the_reason() {
        let no_support = CudaInfo { has_cuda_support: false, n_devices: 0 };
        let no_device = CudaInfo { has_cuda_support: true, n_devices: 0 };
        let one_device = CudaInfo { has_cuda_support: true, n_devices: 1 };

        assert_eq!(DeviceRequest::Auto.resolve_with(no_support), Ok(Device::Cpu));
        assert_eq!(DeviceRequest::Auto.resolve_with(one_device), Ok(Device::Cuda(0)));
        assert_eq!(DeviceRequest::Cuda(0).resolve_with(one_device), Ok(Device::Cuda(0)));

        let error = DeviceRequest::Cuda(0).resolve_with(no_support).unwrap_err().to_string();
        assert!(error.contains("cuda:0 requested") && error.contains("no CUDA support"), "{error}");
        let error = DeviceRequest::Cuda(0).resolve_with(no_device).unwrap_err().to_string();
        assert!(error.contains("sees no CUDA device"), "{error}");
        let error = DeviceRequest::Cuda(1).resolve_with(one_device).unwrap_err().to_string();
        assert!(error.contains("only 1 CUDA device"), "{error}");
    }

    #[test]
    fn probing_this_machine_agrees_with_libtorch() {
        let info = CudaInfo::probe();
        assert_eq!(info.n_devices > 0, Cuda::is_available());
        let device = DeviceRequest::Auto.resolve().unwrap();
        assert_eq!(device.is_cuda(), info.n_devices > 0);
    }
}
