//! Reading IDX files, plain or gzip-compressed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::{ElementType, IdxArray, IdxData, IdxError};

/// The default payload limit: 4 GiB, far above any MNIST-class data set.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 4 << 30;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How many trailing bytes to count before giving up and reporting "at least".
const MAX_TRAILING_BYTES_COUNTED: u64 = 1 << 20;

/// Options of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Largest payload (elements times element size) accepted, in bytes.
    /// Checked against the header before any payload is read.
    pub max_payload_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES }
    }
}

/// Reads an IDX file, plain or gzip-compressed, with the default options.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, IdxError> {
    read_idx_with(path, ReadOptions::default())
}

/// Reads an IDX file, plain or gzip-compressed.
pub fn read_idx_with(path: impl AsRef<Path>, options: ReadOptions) -> Result<IdxArray, IdxError> {
    let path = path.as_ref();
    let file_name = path.display().to_string();
    let file =
        File::open(path).map_err(|error| IdxError::Io { file: file_name.clone(), operation: "cannot open", error })?;
    // The file length bounds a plain payload, which lets the reader size its buffer exactly.
    let file_len = file.metadata().ok().map(|metadata| metadata.len());
    parse(BufReader::with_capacity(1 << 16, file), &file_name, options, file_len)
}

/// Parses IDX data (plain or gzip-compressed) from any reader. `file_name`
/// names the input in errors.
///
/// # Examples
///
/// ```
/// use idx::{ReadOptions, parse_idx};
///
/// // Magic (two zero bytes, type 0x08 = u8, one dimension), the size 3, the values.
/// let bytes = [0u8, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9];
/// let array = parse_idx(&bytes[..], "memory", ReadOptions::default())?;
/// assert_eq!(array.shape(), [3]);
/// assert_eq!(array.into_array::<u8>()?.into_raw_vec_and_offset().0, vec![7, 8, 9]);
///
/// // A header that claims more than the options allow is refused before reading on.
/// let small = ReadOptions { max_payload_bytes: 2 };
/// let error = parse_idx(&bytes[..], "memory", small).unwrap_err();
/// assert!(error.to_string().contains("memory"));
/// # Ok::<(), idx::IdxError>(())
/// ```
pub fn parse_idx(reader: impl Read, file_name: &str, options: ReadOptions) -> Result<IdxArray, IdxError> {
    parse(BufReader::new(reader), file_name, options, None)
}

fn parse(
    mut reader: impl BufRead,
    file_name: &str,
    options: ReadOptions,
    input_len: Option<u64>,
) -> Result<IdxArray, IdxError> {
    let is_gzip = starts_with_gzip_magic(&mut reader, file_name)?;
    if is_gzip {
        let mut source = Source { reader: MultiGzDecoder::new(reader), file_name, is_gzip: true };
        parse_plain(&mut source, options, None)
    } else {
        let mut source = Source { reader, file_name, is_gzip: false };
        parse_plain(&mut source, options, input_len)
    }
}

/// Whether the input starts with the gzip magic, without consuming anything.
fn starts_with_gzip_magic(reader: &mut impl BufRead, file_name: &str) -> Result<bool, IdxError> {
    loop {
        match reader.fill_buf() {
            // A one-byte buffer could hide the second magic byte; IDX input that short is invalid anyway.
            Ok(buffer) => return Ok(buffer.starts_with(&GZIP_MAGIC)),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(IdxError::Io { file: file_name.to_owned(), operation: "cannot read", error }),
        }
    }
}

/// A reader that turns I/O errors into the right [`IdxError`].
struct Source<'a, R> {
    reader: R,
    file_name: &'a str,
    is_gzip: bool,
}

impl<R: Read> Source<'_, R> {
    fn error(&self, error: io::Error) -> IdxError {
        let file = self.file_name.to_owned();
        if self.is_gzip {
            IdxError::CorruptGzip { file, error }
        } else {
            IdxError::Io { file, operation: "cannot read", error }
        }
    }

    /// Reads until `buffer` is full or the input ends; returns the number of bytes read.
    fn read_up_to(&mut self, buffer: &mut [u8]) -> Result<usize, IdxError> {
        let mut n_read = 0;
        while n_read < buffer.len() {
            match self.reader.read(&mut buffer[n_read..]) {
                Ok(0) => break,
                Ok(n) => n_read += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.error(error)),
            }
        }
        Ok(n_read)
    }
}

/// The header of an IDX file: its element type and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// The element type.
    pub element_type: ElementType,
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
}

impl IdxHeader {
    /// The number of elements the payload holds (`None` if it overflows `u64`).
    pub fn n_elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, &dim| acc.checked_mul(dim as u64))
    }
}

/// Reads only the header of an IDX file (plain or gzip; a few bytes are
/// decompressed, never the payload), so a caller can refuse a file by its
/// declared shape before reading it.
///
/// # Examples
///
/// ```
/// use idx::{Compression, ElementType, IdxArray, read_header, write_idx};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("images.gz");
/// write_idx(&path, &IdxArray::from_array(ndarray::Array3::<u8>::zeros((3, 28, 28))), Compression::Gzip)?;
/// let header = read_header(&path)?;
/// assert_eq!((header.element_type, header.shape.as_slice()), (ElementType::U8, &[3, 28, 28][..]));
/// assert_eq!(header.n_elements(), Some(3 * 28 * 28));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_header(path: impl AsRef<Path>) -> Result<IdxHeader, IdxError> {
    let path = path.as_ref();
    let file_name = path.display().to_string();
    let file =
        File::open(path).map_err(|error| IdxError::Io { file: file_name.clone(), operation: "cannot open", error })?;
    let mut reader = BufReader::with_capacity(1 << 12, file);
    let (element_type, dims) = if starts_with_gzip_magic(&mut reader, &file_name)? {
        parse_header(&mut Source { reader: MultiGzDecoder::new(reader), file_name: &file_name, is_gzip: true })?
    } else {
        parse_header(&mut Source { reader, file_name: &file_name, is_gzip: false })?
    };
    Ok(IdxHeader { element_type, shape: dims.iter().map(|&dim| dim as usize).collect() })
}

/// Parses the magic and the dimensions.
fn parse_header<R: Read>(source: &mut Source<'_, R>) -> Result<(ElementType, Vec<u32>), IdxError> {
    let file_name = source.file_name;
    let file = || file_name.to_owned();
    let mut magic = [0u8; 4];
    let n_read = source.read_up_to(&mut magic)?;
    if n_read < 4 {
        // A short input that does not even start like IDX is better reported as a bad magic.
        if magic[..n_read.min(2)].iter().any(|&byte| byte != 0) {
            return Err(IdxError::BadMagic { file: file(), found: magic });
        }
        return Err(IdxError::TruncatedHeader { file: file(), expected: 4, found: n_read, n_dims: 0 });
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(IdxError::BadMagic { file: file(), found: magic });
    }
    let element_type = ElementType::from_code(magic[2])
        .ok_or_else(|| IdxError::UnknownElementType { file: file(), code: magic[2] })?;
    let n_dims = magic[3];

    let mut dims_bytes = vec![0u8; 4 * usize::from(n_dims)];
    let n_read = source.read_up_to(&mut dims_bytes)?;
    if n_read < dims_bytes.len() {
        return Err(IdxError::TruncatedHeader {
            file: file(),
            expected: 4 + dims_bytes.len(),
            found: 4 + n_read,
            n_dims,
        });
    }
    let dims: Vec<u32> =
        dims_bytes.chunks_exact(4).map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect();

    Ok((element_type, dims))
}

fn parse_plain<R: Read>(
    source: &mut Source<'_, R>,
    options: ReadOptions,
    input_len: Option<u64>,
) -> Result<IdxArray, IdxError> {
    let file_name = source.file_name;
    let file = || file_name.to_owned();
    let (element_type, dims) = parse_header(source)?;
    let n_dims = dims.len() as u8;

    let n_bytes = dims
        .iter()
        .try_fold(element_type.size_bytes() as u64, |acc, &dim| acc.checked_mul(u64::from(dim)))
        .ok_or_else(|| IdxError::SizeOverflow { file: file(), shape: dims.clone(), element_type })?;
    if n_bytes > options.max_payload_bytes || usize::try_from(n_bytes).is_err() {
        return Err(IdxError::TooLarge {
            file: file(),
            shape: dims,
            element_type,
            n_bytes,
            limit: options.max_payload_bytes,
        });
    }
    // Both conversions are lossless: the byte count fits in usize, so every factor does.
    let shape: Vec<usize> = dims.iter().map(|&dim| dim as usize).collect();
    let n_bytes_usize = n_bytes as usize;

    // Reserve what the input can back, never what the header merely claims:
    // a plain file of known length bounds the payload; otherwise the buffer grows as bytes arrive.
    let header_len = 4 + 4 * u64::from(n_dims);
    let backed = input_len.map_or(1 << 20, |len| len.saturating_sub(header_len));
    let mut payload = Vec::with_capacity(n_bytes.min(backed) as usize);
    let n_read = (&mut source.reader).take(n_bytes).read_to_end(&mut payload).map_err(|error| source.error(error))?;
    if n_read < n_bytes_usize {
        return Err(IdxError::TruncatedPayload {
            file: file(),
            shape,
            element_type,
            expected: n_bytes,
            found: n_read as u64,
        });
    }

    let n_extra = io::copy(&mut (&mut source.reader).take(MAX_TRAILING_BYTES_COUNTED + 1), &mut io::sink())
        .map_err(|error| source.error(error))?;
    if n_extra > 0 {
        let more = if n_extra > MAX_TRAILING_BYTES_COUNTED { "+" } else { "" };
        return Err(IdxError::TrailingBytes {
            file: file(),
            shape,
            element_type,
            expected: n_bytes,
            n_extra: n_extra.min(MAX_TRAILING_BYTES_COUNTED),
            more,
        });
    }

    IdxArray::new(shape, decode(element_type, payload))
}

/// Converts the big-endian payload to typed elements.
fn decode(element_type: ElementType, payload: Vec<u8>) -> IdxData {
    fn convert<const N: usize, T>(payload: &[u8], from_be_bytes: fn([u8; N]) -> T) -> Vec<T> {
        payload
            .chunks_exact(N)
            .map(|chunk| {
                let mut bytes = [0u8; N];
                bytes.copy_from_slice(chunk);
                from_be_bytes(bytes)
            })
            .collect()
    }
    match element_type {
        ElementType::U8 => IdxData::U8(payload),
        ElementType::I8 => IdxData::I8(payload.into_iter().map(|byte| byte as i8).collect()),
        ElementType::I16 => IdxData::I16(convert(&payload, i16::from_be_bytes)),
        ElementType::I32 => IdxData::I32(convert(&payload, i32::from_be_bytes)),
        ElementType::F32 => IdxData::F32(convert(&payload, f32::from_be_bytes)),
        ElementType::F64 => IdxData::F64(convert(&payload, f64::from_be_bytes)),
    }
}
