//! The seed's convolutional network on libtorch (through `tch`): device
//! selection now; the network, the optimizer and checkpoints follow.
#![warn(missing_docs)]

pub mod device;

pub use device::{DeviceError, DeviceRequest};
