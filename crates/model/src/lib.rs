//! The seed's convolutional network on libtorch (through `tch`): the network
//! in its intended and its as-built form, and a network of 3x3
//! convolutions; Adam written over tensors, checkpoints in safetensors,
//! evaluation in batches, and device selection.
#![warn(missing_docs)]

pub mod adam;
pub mod allocator;
pub mod checkpoint;
pub mod classifier;
pub mod device;
pub mod ema;
pub mod ensemble;
pub mod eval;
#[allow(unsafe_code)]
mod fused;
pub mod network;
pub mod schedule;
mod shadow;
pub mod summary;
pub mod throughput;
pub mod tta;

pub use adam::{Adam, AdamConfig, AdamKernel};
pub use checkpoint::{Checkpoint, CheckpointMeta, DatasetMeta};
pub use classifier::{Classifier, ForInference, load_for_inference};
pub use device::{DeviceError, DeviceRequest};
pub use ema::Ema;
pub use ensemble::Ensemble;
pub use eval::{
    Evaluation, StepOnDevice, StepResult, evaluate, predict, probabilities, train_step, train_step_in,
    train_step_on_device,
};
pub use network::{Architecture, Network, Precision, Role, TensorSpec};
pub use summary::{LayerSummary, ModelSummary};
pub use tta::{TestTimeAugmented, Views};

/// What went wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{file}: {operation}: {error}")]
    Io {
        /// The file.
        file: String,
        /// What was being done.
        operation: &'static str,
        /// The underlying error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A checkpoint that cannot be used.
    #[error("{file}: {reason}")]
    Checkpoint {
        /// The file.
        file: String,
        /// What is wrong, naming the tensor or metadata key.
        reason: String,
    },
    /// Images of a shape the network cannot read.
    #[error(
        "images of shape {found:?}: expected [N, {side}, {side}] or [N, 1, {side}, {side}] with N at least 1",
        side = network::IMAGE_SIDE
    )]
    ImageShape {
        /// The shape given.
        found: Vec<i64>,
    },
    /// Labels that do not match the images.
    #[error("{n_images} images but labels of shape {found:?}: expected [{n_images}]")]
    LabelShape {
        /// Images given.
        n_images: i64,
        /// The labels' shape.
        found: Vec<i64>,
    },
    /// A batch size that cannot be used.
    #[error("{what} batch size {found}: expected at least 1")]
    BatchSize {
        /// Which batch size (evaluation, prediction, ...).
        what: &'static str,
        /// The size given.
        found: usize,
    },
    /// Tensors on another device than the ones they are used with.
    #[error("{what} is on {found:?}, but the network is on {expected:?}")]
    Device {
        /// Which tensors.
        what: &'static str,
        /// The network's device.
        expected: tch::Device,
        /// Their device.
        found: tch::Device,
    },
    /// The optimizer was given another parameter list than it was built for.
    #[error("the optimizer holds state for {expected} parameters but was given {found}")]
    ParameterCount {
        /// Parameters the optimizer was built for.
        expected: usize,
        /// Parameters given.
        found: usize,
    },
    /// A tensor holds NaN or infinity where the state must be finite.
    #[error("tensor `{tensor}` holds NaN or infinite values")]
    NonFinite {
        /// The tensor's name (`fc4.weight`, `optimizer.exp_avg_sq.fc4.weight`, ...).
        tensor: String,
    },
    /// A number format the device cannot compute in natively.
    #[error("precision {precision}: {reason}")]
    Precision {
        /// The precision asked for (`bf16`).
        precision: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A setting outside its range.
    #[error("{setting}: {reason}")]
    Setting {
        /// Which setting.
        setting: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A libtorch operation failed: out of memory on a device, for example.
    #[error("libtorch: {operation}: {error}")]
    Libtorch {
        /// What was being done.
        operation: &'static str,
        /// libtorch's error (in the message, so not also a `source`).
        error: tch::TchError,
    },
}

impl ModelError {
    /// A mapper from libtorch's error to [`ModelError::Libtorch`] for `operation`.
    pub(crate) fn libtorch(operation: &'static str) -> impl FnOnce(tch::TchError) -> ModelError {
        move |error| ModelError::Libtorch { operation, error }
    }
}
