//! Reader and writer for the IDX format of LeCun's MNIST files, and the MNIST
//! data set split the way the seed program (TensorFlow's `input_data`) splits it.
//!
//! An IDX file is a 4-byte magic (two zero bytes, an element type code, the
//! number of dimensions), one big-endian `u32` size per dimension, then the
//! elements in row-major order, big-endian. Files may be gzip-compressed; the
//! reader detects that from the content, never from the file name.
//!
//! Reading never panics and never allocates more than the input can back: the
//! declared shape is checked against a size limit before anything is read, and
//! the payload buffer grows only as bytes actually arrive.
#![warn(missing_docs)]

mod array;
mod error;
pub mod mnist;
mod read;
mod write;

pub use array::{ElementType, IdxArray, IdxData, IdxElement};
pub use error::IdxError;
pub use read::{DEFAULT_MAX_PAYLOAD_BYTES, IdxHeader, ReadOptions, parse_idx, read_header, read_idx, read_idx_with};
pub use write::{Compression, encode_idx, write_idx};
