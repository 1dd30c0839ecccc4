//! The errors of reading and writing IDX files.

use std::io;

use crate::ElementType;

/// What went wrong reading or writing an IDX file. Every variant about a file
/// names it (`file` is the path, or a caller-chosen name for in-memory input).
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened, read or written.
    #[error("{file}: {operation}: {error}")]
    Io {
        /// The file.
        file: String,
        /// What was being done: "cannot open", "cannot read", "cannot write"...
        operation: &'static str,
        /// The underlying error (shown in the message, so not also a `source`).
        error: io::Error,
    },
    /// The input ended inside the 4-byte magic number or the dimension sizes.
    #[error("{file}: truncated header: expected {expected} bytes (magic and {n_dims} dimension sizes), found {found}")]
    TruncatedHeader {
        /// The file.
        file: String,
        /// Header bytes expected.
        expected: usize,
        /// Header bytes present.
        found: usize,
        /// Number of dimensions the magic declared (0 if the magic itself was cut).
        n_dims: u8,
    },
    /// The magic number does not start with two zero bytes.
    #[error(
        "{file}: bad magic number {found:02x?}: expected two zero bytes, a type code and a dimension count (is this an IDX file?)"
    )]
    BadMagic {
        /// The file.
        file: String,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The type code is none of the six IDX defines.
    #[error(
        "{file}: unknown element type code {code:#04x}: expected 0x08 (u8), 0x09 (i8), 0x0b (i16), 0x0c (i32), 0x0d (f32) or 0x0e (f64)"
    )]
    UnknownElementType {
        /// The file.
        file: String,
        /// The type code found.
        code: u8,
    },
    /// The payload size implied by the shape does not fit in 64 bits.
    #[error("{file}: shape {shape:?} of {element_type} overflows: its size in bytes does not fit in 64 bits")]
    SizeOverflow {
        /// The file.
        file: String,
        /// The declared shape.
        shape: Vec<u32>,
        /// The declared element type.
        element_type: ElementType,
    },
    /// The payload implied by the shape is larger than the reader's limit.
    #[error(
        "{file}: shape {shape:?} of {element_type} needs {n_bytes} bytes, over the limit of {limit} bytes (raise it with ReadOptions::max_payload_bytes)"
    )]
    TooLarge {
        /// The file.
        file: String,
        /// The declared shape.
        shape: Vec<u32>,
        /// The declared element type.
        element_type: ElementType,
        /// Payload size in bytes.
        n_bytes: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The input ended before the payload the shape declares.
    #[error("{file}: truncated payload: shape {shape:?} of {element_type} needs {expected} bytes, found {found}")]
    TruncatedPayload {
        /// The file.
        file: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The declared element type.
        element_type: ElementType,
        /// Payload bytes expected.
        expected: u64,
        /// Payload bytes present.
        found: u64,
    },
    /// Bytes follow the payload the shape declares.
    #[error(
        "{file}: trailing bytes: shape {shape:?} of {element_type} needs {expected} payload bytes, but {n_extra}{more} more follow"
    )]
    TrailingBytes {
        /// The file.
        file: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The declared element type.
        element_type: ElementType,
        /// Payload bytes expected.
        expected: u64,
        /// Extra bytes counted (counting stops at a bound, see `more`).
        n_extra: u64,
        /// `"+"` when counting stopped before the end of the input, `""` otherwise.
        more: &'static str,
    },
    /// The input starts like gzip but does not decompress.
    #[error("{file}: corrupt gzip stream: {error}")]
    CorruptGzip {
        /// The file.
        file: String,
        /// The decompressor's error (shown in the message, so not also a `source`).
        error: io::Error,
    },
    /// A dimension is too large for the 32-bit sizes of the IDX header (writing only).
    #[error("{file}: dimension {dim_idx} has size {size}, over the IDX maximum of {max}", max = u32::MAX)]
    DimensionTooLarge {
        /// The file.
        file: String,
        /// Which dimension.
        dim_idx: usize,
        /// Its size.
        size: usize,
    },
    /// More than 255 dimensions (writing only).
    #[error("{file}: {n_dims} dimensions, over the IDX maximum of 255")]
    TooManyDimensions {
        /// The file.
        file: String,
        /// The number of dimensions.
        n_dims: usize,
    },
    /// The number of elements does not match the shape.
    #[error("shape {shape:?} does not match the {n_elements} elements given")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// The number of elements given.
        n_elements: usize,
    },
    /// The array holds another element type than the one asked for.
    #[error("element type is {found}, expected {expected}")]
    WrongElementType {
        /// The type asked for.
        expected: ElementType,
        /// The type stored.
        found: ElementType,
    },
}
