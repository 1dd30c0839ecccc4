//! Turns people's photos and scans of digits (or of clothes, for
//! Fashion-MNIST) into the 28x28 inputs an MNIST-format network was trained
//! on, the way the data sets themselves were made.
//!
//! - [`decode`]: image files (PNG, JPEG, BMP, PGM/PPM, GIF, WebP) to a
//!   greyscale array, with a file-size and a pixel limit checked from the
//!   header before anything is decoded.
//! - [`prepare`](mod@prepare): greyscale to network input: polarity, paper
//!   and noise removal, the ink's bounding box, scaling with smoothing, and
//!   placement by centre of mass (MNIST) or by bounding box (Fashion-MNIST).
//! - [`render`]: the reverse, for tests and measurements: an MNIST digit
//!   rendered as a phone photo of ink on paper.
//!
//! ```
//! use preprocess::{Options, prepare, render};
//!
//! // A digit drawn as a thick dark stroke on light, slightly grey paper.
//! let mut grey = ndarray::Array2::from_elem((120, 90), 0.8f32);
//! grey.slice_mut(ndarray::s![20..100, 40..52]).fill(0.1);
//! let prepared = prepare(grey.view(), &Options::default(), "stroke.png").unwrap();
//! assert_eq!(prepared.image.dim(), (28, 28));
//! assert!(prepared.inverted, "dark ink on light paper is inverted to MNIST's white on black");
//! // MNIST's layout: the ink fits a 20-pixel box.
//! let rows_with_ink = prepared.image.rows().into_iter().filter(|row| row.iter().any(|&v| v > 0.0)).count();
//! assert_eq!(rows_with_ink, 20);
//! # let _ = render::PhotoStyle::default();
//! ```
#![warn(missing_docs)]

pub mod decode;
pub mod prepare;
pub mod render;

pub use decode::{DEFAULT_MAX_DECODE_BYTES, Limits, decode_grey, encode_png, memory_needed, read_limited};
pub use prepare::{Invert, Layout, Options, Prepared, prepare};

/// Height and width of the network's input images.
pub const SIDE: usize = 28;

/// What went wrong, always naming the file (or `-` for standard input).
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    /// The file could not be read.
    #[error("{name}: cannot read: {error}")]
    Io {
        /// The file.
        name: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file of 0 bytes.
    #[error("{name}: empty file (0 bytes): expected an image")]
    EmptyFile {
        /// The file.
        name: String,
    },
    /// A file larger than [`Limits::max_file_bytes`].
    #[error("{name}: {size} bytes, more than the limit of {limit} bytes")]
    FileTooLarge {
        /// The file.
        name: String,
        /// Its size (at least this many bytes, for a stream).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Content that no supported decoder recognises.
    #[error("{name}: not an image in a supported format (PNG, JPEG, BMP, PGM/PPM, GIF, WebP)")]
    UnknownFormat {
        /// The file.
        name: String,
    },
    /// A header that claims more pixels than [`Limits::max_pixels`].
    #[error(
        "{name}: the header claims {width}x{height} pixels, more than the limit of {limit}; refused before decoding"
    )]
    TooManyPixels {
        /// The file.
        name: String,
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
        /// The limit, in pixels.
        limit: u64,
    },
    /// An image whose decoding would take more memory than
    /// [`Limits::max_decode_bytes`] (a decompression bomb, or a photo too
    /// large for the limit), refused before decoding.
    #[error(
        "{name}: a {width}x{height} {color} image needs {needed} bytes of memory to decode and prepare, more \
         than the limit of {limit} bytes; refused before decoding (scale it down)"
    )]
    TooMuchMemory {
        /// The file.
        name: String,
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
        /// The colour type the header announces.
        color: String,
        /// The memory decoding would take.
        needed: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A recognised format whose data is broken (truncated, corrupt).
    #[error("{name}: cannot decode the {format} image: {reason}")]
    Decode {
        /// The file.
        name: String,
        /// The format the content announced.
        format: String,
        /// The decoder's reason.
        reason: String,
    },
    /// An image with no pixels.
    #[error("{name}: the image is {width}x{height}: expected at least one pixel")]
    NoPixels {
        /// The file.
        name: String,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
    /// A blank image: nothing stands out from the paper.
    #[error(
        "{name}: no ink found: the image is blank (the strongest mark differs from the paper by {contrast:.3}, \
         noise is {noise:.3}; at least {needed:.3} is needed)"
    )]
    NoInk {
        /// The file.
        name: String,
        /// How far the strongest mark stands out from the paper (0 to 1).
        contrast: f32,
        /// The estimated noise level (standard deviation, 0 to 1).
        noise: f32,
        /// The contrast needed to call something ink.
        needed: f32,
    },
    /// A pixel that is not a finite number (only arrays given directly can hold one).
    #[error("{name}: pixel ({row}, {col}) is {value}: expected a finite value in [0, 1]")]
    NonFinite {
        /// The source.
        name: String,
        /// Row of the first such pixel.
        row: usize,
        /// Column of the first such pixel.
        col: usize,
        /// Its value.
        value: f32,
    },
}
