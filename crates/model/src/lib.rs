//! The seed's convolutional network on libtorch (through `tch`): the network
//! in its intended and its as-built form, Adam written over tensors,
//! checkpoints in safetensors, evaluation in batches, and device selection.
#![warn(missing_docs)]

pub mod adam;
pub mod checkpoint;
pub mod device;
pub mod eval;
pub mod network;
pub mod summary;

pub use adam::{Adam, AdamConfig};
pub use checkpoint::{Checkpoint, CheckpointMeta, DatasetMeta};
pub use device::{DeviceError, DeviceRequest};
pub use eval::{Evaluation, StepResult, evaluate, predict, probabilities, train_step};
pub use network::{Architecture, Network, Role, TensorSpec};
pub use summary::{LayerSummary, ModelSummary};

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
    /// Inputs of the wrong shape.
    #[error("{0}")]
    Shape(String),
    /// The optimizer was given another parameter list than it was built for.
    #[error("the optimizer holds state for {expected} parameters but was given {found}")]
    ParameterCount {
        /// Parameters the optimizer was built for.
        expected: usize,
        /// Parameters given.
        found: usize,
    },
    /// A libtorch error.
    #[error("libtorch: {0}")]
    Tensor(String),
}
