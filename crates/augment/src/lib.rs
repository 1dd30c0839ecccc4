//! The seed's image augmentation (rotate, zoom, shift) with `scipy.ndimage`'s
//! semantics, on ndarray, without libtorch.
//!
//! - [`kernels`]: `rotate`, `zoom`, `shift` and `affine_transform` on 2-D
//!   `f32` images, matching SciPy (`mode='constant'`, `cval=0`, spline
//!   prefiltering) for interpolation orders 0, 1 and 3.
//! - [`original`]: the seed's composite step (`augment_img`), its random
//!   parameters, and a fused variant that applies the same transformation in
//!   one interpolation pass.
//! - [`transform`]: augmentation as a list of transforms ([`Pipeline`]),
//!   each drawing its randomness from the image's `(seed, epoch, index)`.
//! - [`batch`]: whole batches, in parallel with rayon, deterministic per
//!   `(seed, epoch, image index)` whatever the thread count or batching.
//!
//! Non-finite pixels propagate as in SciPy: with order 3 the prefilter
//! spreads a NaN or infinity along its whole row and column, so every output
//! pixel whose spline taps touch those lines becomes NaN; with orders 0 and 1
//! only outputs whose taps include the pixel do (a zero weight still yields
//! NaN, since `0 * NaN` is NaN). Output pixels that map outside the image are
//! 0 regardless.
#![warn(missing_docs)]

pub mod batch;
pub mod kernels;
pub mod original;
mod spline;
pub mod transform;

pub use batch::Augmenter;
pub use kernels::{Workspace, rotate, shift, zoom};
pub use original::{AffineParams, OriginalAffine, ParamRanges, Scratch};
pub use transform::{ImageKey, Pipeline, Transform};

/// Spline interpolation order, as SciPy's `order` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Order 0: nearest neighbour.
    Nearest,
    /// Order 1: bilinear.
    Linear,
    /// Order 3: cubic B-spline with prefiltering (SciPy's default, the seed's choice).
    #[default]
    Cubic,
}

impl Order {
    /// Number of spline taps per axis.
    pub fn n_taps(self) -> usize {
        match self {
            Order::Nearest => 1,
            Order::Linear => 2,
            Order::Cubic => 4,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// An image with no pixels.
    #[error("image is {rows}x{cols}: expected at least one row and one column")]
    EmptyImage {
        /// Rows found.
        rows: usize,
        /// Columns found.
        cols: usize,
    },
    /// A batch with no images.
    #[error("empty batch: expected at least one image")]
    EmptyBatch,
    /// A pipeline spec that names an unknown transform or bad settings.
    #[error("augmentation {spec:?}: {reason}")]
    BadPipeline {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An output of the wrong shape.
    #[error("output is {found:?}, expected {expected:?}")]
    OutputShape {
        /// Shape needed.
        expected: (usize, usize),
        /// Shape given.
        found: (usize, usize),
    },
    /// A batch and its output disagree.
    #[error("batch is {images:?} but its output is {output:?}")]
    BatchShape {
        /// `[n_images, rows, cols]` of the input.
        images: (usize, usize, usize),
        /// `[n_images, rows, cols]` of the output.
        output: (usize, usize, usize),
    },
    /// A batch and its image indices disagree.
    #[error("batch has {n_images} images but {n_indices} image indices")]
    IndexCount {
        /// Images in the batch.
        n_images: usize,
        /// Indices given.
        n_indices: usize,
    },
    /// An array that is not in standard (row-major, contiguous) layout.
    #[error("{what} must be contiguous and row-major")]
    NotContiguous {
        /// Which array.
        what: &'static str,
    },
    /// A zoom factor that is not a finite positive number.
    #[error("zoom factor {factor} is not a finite positive number")]
    BadZoom {
        /// The factor.
        factor: f64,
    },
    /// A zoom window outside the zoomed image.
    #[error("window {window:?} at ({top}, {left}) does not fit the zoomed image {full:?}")]
    ZoomWindow {
        /// Window top.
        top: usize,
        /// Window left.
        left: usize,
        /// Window shape.
        window: (usize, usize),
        /// Zoomed image shape.
        full: (usize, usize),
    },
    /// Sampling ranges that cannot be used.
    #[error("bad augmentation range: {reason}")]
    BadRanges {
        /// What is wrong.
        reason: String,
    },
    /// The seed's crop-zoom-trim would leave an image smaller than the input.
    #[error("zoom {factor} of a {rows}x{cols} image leaves a {found:?} result: too small to trim back")]
    ZoomTooSmall {
        /// The zoom factor.
        factor: f64,
        /// Image rows.
        rows: usize,
        /// Image columns.
        cols: usize,
        /// The zoomed crop's shape.
        found: (usize, usize),
    },
}
