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

/// What this process's libtorch can see of CUDA, and what stands in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaInfo {
    /// Whether this process loaded libtorch's CUDA library (`libtorch_cuda`):
    /// false for a CPU-only libtorch, or one whose CUDA library was not linked.
    pub has_cuda_support: bool,
    /// Whether this machine has an NVIDIA kernel driver loaded
    /// (`/proc/driver/nvidia/version` exists).
    pub driver_loaded: bool,
    /// How many CUDA devices libtorch sees.
    pub n_devices: usize,
}

/// The file the NVIDIA kernel driver creates when it is loaded.
const NVIDIA_DRIVER_FILE: &str = "/proc/driver/nvidia/version";

impl CudaInfo {
    /// Asks libtorch, and this process's memory map and the kernel for what
    /// libtorch does not say: `tch::utils::has_cuda` is false both for a
    /// CPU-only libtorch and for a CUDA one on a machine without a driver.
    pub fn probe() -> Self {
        let has_cuda = tch::utils::has_cuda();
        let n_devices = if has_cuda { Cuda::device_count().max(0) as usize } else { 0 };
        Self {
            has_cuda_support: has_cuda || library_loaded("libtorch_cuda"),
            driver_loaded: std::path::Path::new(NVIDIA_DRIVER_FILE).exists(),
            n_devices,
        }
    }

    /// Why `requested` (a CUDA device) cannot be used, telling the causes
    /// apart: no CUDA in this libtorch, no driver, no device, too few devices.
    fn reason_unavailable(self, index: usize) -> String {
        if !self.has_cuda_support {
            return "this program's libtorch has no CUDA support (a CPU-only libtorch, or libtorch_cuda was not linked)"
                .to_owned();
        }
        if !self.driver_loaded && self.n_devices == 0 {
            return format!(
                "this program's libtorch has CUDA, but this machine has no NVIDIA driver loaded ({NVIDIA_DRIVER_FILE} is missing): no GPU, or its driver is not installed"
            );
        }
        if self.n_devices == 0 {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES")
                .map(|value| format!("CUDA_VISIBLE_DEVICES is {value:?}"))
                .unwrap_or_else(|_| "CUDA_VISIBLE_DEVICES is not set".to_owned());
            return format!(
                "the NVIDIA driver is loaded but libtorch sees no CUDA device ({visible}; or the driver is older than this libtorch's CUDA needs)"
            );
        }
        format!("cuda:{index} is beyond the {} visible CUDA device(s), numbered from 0", self.n_devices)
    }
}

/// Whether a shared library whose file name starts with `name` is mapped
/// into this process (Linux's `/proc/self/maps`; false where it is absent).
fn library_loaded(name: &str) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    // A path call: the tidy test reads `.any(` as tch's panicking `Tensor::any`.
    Iterator::any(&mut maps.lines().filter_map(|line| line.rsplit('/').next()), |file| {
        file.starts_with(name) && file.contains(".so")
    })
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
            Self::Cuda(index) => Err(DeviceError::CudaUnavailable {
                requested: self.to_string(),
                reason: cuda.reason_unavailable(index),
            }),
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
        let facts =
            |has_cuda_support, driver_loaded, n_devices| CudaInfo { has_cuda_support, driver_loaded, n_devices };
        let (no_support, no_driver, no_device, one_device) =
            (facts(false, false, 0), facts(true, false, 0), facts(true, true, 0), facts(true, true, 1));

        assert_eq!(DeviceRequest::Auto.resolve_with(no_support), Ok(Device::Cpu));
        assert_eq!(DeviceRequest::Auto.resolve_with(no_driver), Ok(Device::Cpu));
        assert_eq!(DeviceRequest::Auto.resolve_with(one_device), Ok(Device::Cuda(0)));
        assert_eq!(DeviceRequest::Cuda(0).resolve_with(one_device), Ok(Device::Cuda(0)));

        let error = |request: DeviceRequest, facts| request.resolve_with(facts).unwrap_err().to_string();
        let message = error(DeviceRequest::Cuda(0), no_support);
        assert!(message.contains("cuda:0 requested") && message.contains("has no CUDA support"), "{message}");
        let message = error(DeviceRequest::Cuda(0), no_driver);
        assert!(message.contains("libtorch has CUDA, but this machine has no NVIDIA driver loaded"), "{message}");
        let message = error(DeviceRequest::Cuda(0), no_device);
        assert!(message.contains("driver is loaded but libtorch sees no CUDA device"), "{message}");
        assert!(message.contains("CUDA_VISIBLE_DEVICES"), "{message}");
        let message = error(DeviceRequest::Cuda(1), one_device);
        assert!(message.contains("cuda:1 is beyond the 1 visible CUDA device(s)"), "{message}");
    }

    #[test]
    fn a_library_is_found_in_this_process_map_by_its_file_name() {
        assert!(library_loaded("libc"), "every Linux process maps the C library");
        assert!(!library_loaded("libnot-a-real-library-name"));
    }

    #[test]
    fn probing_this_machine_agrees_with_libtorch() {
        let info = CudaInfo::probe();
        assert_eq!(info.n_devices > 0, Cuda::is_available());
        let device = DeviceRequest::Auto.resolve().unwrap();
        assert_eq!(device.is_cuda(), info.n_devices > 0);
    }
}
