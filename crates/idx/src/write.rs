//! Writing IDX files, atomically.

use std::io::{self, Write};
use std::path::Path;

use atomic_write_file::AtomicWriteFile;
use flate2::write::GzEncoder;

use crate::{IdxArray, IdxData, IdxError};

/// Whether to gzip the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain IDX.
    #[default]
    None,
    /// Gzip-compressed IDX (what the MNIST distribution ships).
    Gzip,
}

/// Encodes an array as IDX bytes. `file_name` names the destination in errors.
pub fn encode_idx(array: &IdxArray, compression: Compression, file_name: &str) -> Result<Vec<u8>, IdxError> {
    let plain = encode_plain(array, file_name)?;
    match compression {
        Compression::None => Ok(plain),
        Compression::Gzip => {
            let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&plain).and_then(|()| encoder.finish()).map_err(|error| IdxError::Io {
                file: file_name.to_owned(),
                operation: "cannot compress",
                error,
            })
        }
    }
}

/// Writes an array to an IDX file, atomically and durably: the bytes go to a
/// temporary file created in the same folder, which is synced and renamed
/// over `path`, and the folder is synced (`atomic-write-file`), so a crash
/// never leaves a partial file under `path`.
///
/// # Examples
///
/// ```
/// use idx::{Compression, IdxArray, read_idx, write_idx};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("labels-idx1-ubyte.gz");
/// let labels = IdxArray::from_array(ndarray::arr1(&[3u8, 1, 4]));
/// write_idx(&path, &labels, Compression::Gzip)?;
/// assert_eq!(read_idx(&path)?, labels);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_idx(path: impl AsRef<Path>, array: &IdxArray, compression: Compression) -> Result<(), IdxError> {
    let path = path.as_ref();
    let file_name = path.display().to_string();
    let bytes = encode_idx(array, compression, &file_name)?;
    let written = (|| -> io::Result<()> {
        let mut file = AtomicWriteFile::open(path)?;
        file.write_all(&bytes)?;
        file.commit()
    })();
    written.map_err(|error| IdxError::Io { file: file_name, operation: "cannot write", error })
}

fn encode_plain(array: &IdxArray, file_name: &str) -> Result<Vec<u8>, IdxError> {
    let shape = array.shape();
    let n_dims = u8::try_from(shape.len())
        .map_err(|_| IdxError::TooManyDimensions { file: file_name.to_owned(), n_dims: shape.len() })?;
    let element_type = array.element_type();
    let n_elements = array.data().len();
    let mut bytes = Vec::with_capacity(4 + 4 * shape.len() + n_elements * element_type.size_bytes());
    bytes.extend_from_slice(&[0, 0, element_type.code(), n_dims]);
    for (dim_idx, &size) in shape.iter().enumerate() {
        let size_u32 = u32::try_from(size).map_err(|_| IdxError::DimensionTooLarge {
            file: file_name.to_owned(),
            dim_idx,
            size,
        })?;
        bytes.extend_from_slice(&size_u32.to_be_bytes());
    }
    match array.data() {
        IdxData::U8(values) => bytes.extend_from_slice(values),
        IdxData::I8(values) => bytes.extend(values.iter().map(|&value| value as u8)),
        IdxData::I16(values) => values.iter().for_each(|value| bytes.extend_from_slice(&value.to_be_bytes())),
        IdxData::I32(values) => values.iter().for_each(|value| bytes.extend_from_slice(&value.to_be_bytes())),
        IdxData::F32(values) => values.iter().for_each(|value| bytes.extend_from_slice(&value.to_be_bytes())),
        IdxData::F64(values) => values.iter().for_each(|value| bytes.extend_from_slice(&value.to_be_bytes())),
    }
    Ok(bytes)
}
