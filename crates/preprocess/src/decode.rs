//! Image files to greyscale arrays, within limits checked before decoding.

use std::io::{Cursor, Read};

use image::{DynamicImage, ImageDecoder, ImageReader};
use ndarray::{Array2, ArrayView2};

use crate::PrepError;

/// Bounds on what one input may cost, checked before the work they bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file (or standard-input stream) read, in bytes.
    pub max_file_bytes: u64,
    /// Largest image decoded, in pixels, checked against the header's size
    /// before any pixel is decoded.
    pub max_pixels: u64,
}

impl Default for Limits {
    /// 64 MiB and 64 megapixels: any phone photo, nothing that would take
    /// gigabytes of memory (a 64-megapixel image decodes to 256 MiB of RGBA).
    fn default() -> Self {
        Self { max_file_bytes: 64 << 20, max_pixels: 64_000_000 }
    }
}

/// Reads at most [`Limits::max_file_bytes`] from `reader` (a file or
/// standard input), failing with [`PrepError::FileTooLarge`] beyond it and
/// with [`PrepError::EmptyFile`] on no bytes at all.
///
/// ```
/// use preprocess::{Limits, read_limited, PrepError};
///
/// let limits = Limits { max_file_bytes: 4, ..Limits::default() };
/// assert_eq!(read_limited(&b"abc"[..], "in", limits).unwrap(), b"abc");
/// assert!(matches!(read_limited(&b"abcde"[..], "in", limits), Err(PrepError::FileTooLarge { .. })));
/// assert!(matches!(read_limited(&b""[..], "in", limits), Err(PrepError::EmptyFile { .. })));
/// ```
pub fn read_limited(reader: impl Read, name: &str, limits: Limits) -> Result<Vec<u8>, PrepError> {
    let mut bytes = Vec::new();
    reader
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| PrepError::Io { name: name.to_owned(), error })?;
    if bytes.is_empty() {
        return Err(PrepError::EmptyFile { name: name.to_owned() });
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(PrepError::FileTooLarge {
            name: name.to_owned(),
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    Ok(bytes)
}

/// Decodes an image file's bytes to greyscale in `[0, 1]` (0 black, 1
/// white), `[height, width]`. The format is recognised from the content, not
/// the name. Colour becomes luma (ITU-R BT.601, as PIL converts for MNIST-style
/// data); transparent pixels are laid on a background: the paper's colour
/// when the image is mostly opaque, else the colour opposite the ink's (a
/// drawing on a transparent canvas).
///
/// ```
/// use preprocess::{Limits, decode_grey, PrepError};
///
/// let pgm = b"P5 3 2 255\n\x00\x80\xff\x00\x80\xff";
/// let grey = decode_grey(pgm, "tiny.pgm", Limits::default()).unwrap();
/// assert_eq!(grey.dim(), (2, 3));
/// assert_eq!(grey[[0, 2]], 1.0);
///
/// // A header claiming 100,000 x 100,000 pixels is refused before decoding.
/// let bomb = b"P5 100000 100000 255\n\x00";
/// assert!(matches!(decode_grey(bomb, "bomb.pgm", Limits::default()), Err(PrepError::TooManyPixels { .. })));
/// ```
pub fn decode_grey(bytes: &[u8], name: &str, limits: Limits) -> Result<Array2<f32>, PrepError> {
    if bytes.is_empty() {
        return Err(PrepError::EmptyFile { name: name.to_owned() });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| PrepError::Io { name: name.to_owned(), error })?;
    let Some(format) = reader.format() else {
        return Err(PrepError::UnknownFormat { name: name.to_owned() });
    };
    let decode_error = |error: image::ImageError| PrepError::Decode {
        name: name.to_owned(),
        format: format!("{format:?}").to_uppercase(),
        reason: error.to_string(),
    };
    // The decoder's own allocation cap, as a second line behind the pixel check.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16).max(1 << 20));
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PrepError::TooManyPixels { name: name.to_owned(), width, height, limit: limits.max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(PrepError::NoPixels { name: name.to_owned(), width: width as usize, height: height as usize });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    Ok(to_grey(&image))
}

/// Luma of an RGB triple, ITU-R BT.601.
fn luma([red, green, blue]: [f32; 3]) -> f32 {
    0.299 * red + 0.587 * green + 0.114 * blue
}

/// Greyscale with transparency flattened onto a background (see [`decode_grey`]).
fn to_grey(image: &DynamicImage) -> Array2<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if !image.color().has_alpha() {
        let rgb = image.to_rgb32f();
        let values = rgb.pixels().map(|pixel| luma(pixel.0).clamp(0.0, 1.0)).collect();
        return Array2::from_shape_vec((height, width), values).expect("one value per pixel");
    }
    let rgba = image.to_rgba32f();
    let pixels: Vec<(f32, f32)> =
        rgba.pixels().map(|pixel| (luma([pixel[0], pixel[1], pixel[2]]).clamp(0.0, 1.0), pixel[3])).collect();
    let background = transparent_background(&pixels);
    let values = pixels.iter().map(|&(value, alpha)| alpha * value + (1.0 - alpha) * background).collect();
    Array2::from_shape_vec((height, width), values).expect("one value per pixel")
}

/// What transparent pixels stand for. Mostly opaque: a photo or scan with
/// transparent margins, so the paper (the opaque pixels' median). Mostly
/// transparent: a drawing on a transparent canvas, so the opposite of the
/// ink (the opaque pixels' mean, weighted by opacity).
fn transparent_background(pixels: &[(f32, f32)]) -> f32 {
    let mut opaque: Vec<f32> = pixels.iter().filter(|(_, alpha)| *alpha >= 0.5).map(|(value, _)| *value).collect();
    if opaque.len() * 2 > pixels.len() {
        let middle = opaque.len() / 2;
        return *opaque.select_nth_unstable_by(middle, f32::total_cmp).1;
    }
    let weight: f32 = pixels.iter().map(|(_, alpha)| alpha).sum();
    if weight == 0.0 {
        // Nothing visible at all: white paper, found blank later.
        return 1.0;
    }
    let ink = pixels.iter().map(|(value, alpha)| value * alpha).sum::<f32>() / weight;
    if ink < 0.5 { 1.0 } else { 0.0 }
}

/// A greyscale image in `[0, 1]` as an 8-bit greyscale PNG (values are
/// clamped and rounded), e.g. to show the 28x28 input the network saw.
///
/// ```
/// let image = ndarray::Array2::from_elem((28, 28), 0.5f32);
/// let png = preprocess::encode_png(image.view());
/// assert_eq!(&png[1..4], b"PNG");
/// ```
pub fn encode_png(image: ArrayView2<'_, f32>) -> Vec<u8> {
    let (height, width) = image.dim();
    let pixels: Vec<u8> = image.iter().map(|&value| (value.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let buffer = image::GrayImage::from_raw(width as u32, height as u32, pixels).expect("one byte per pixel");
    let mut png = Cursor::new(Vec::new());
    buffer.write_to(&mut png, image::ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    png.into_inner()
}
