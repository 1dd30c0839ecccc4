//! Image files to greyscale arrays, within limits checked before decoding.

use std::io::{Cursor, Read};

use image::{DynamicImage, ImageDecoder, ImageReader};
use ndarray::{Array2, ArrayView2};

use crate::PrepError;

/// The memory one image's decoding and preparation may take by default:
/// 512 MiB, enough for a 31-megapixel photo ([`memory_needed`]: 17 bytes a
/// pixel), far below what a small compressed file can claim (a 78 KB PNG
/// can expand to 62 megapixels, which would take 1.06 GB).
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 512 << 20;

/// Bounds on what one input may cost, checked before the work they bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file (or standard-input stream) read, in bytes.
    pub max_file_bytes: u64,
    /// Largest image decoded, in pixels, checked against the header's size
    /// before any pixel is decoded.
    pub max_pixels: u64,
    /// Most memory decoding may take: the decoded pixels at the file's own
    /// depth plus the greyscale copy, computed from the header before any
    /// pixel is decoded, and the decoder's own allocation cap.
    pub max_decode_bytes: u64,
}

impl Default for Limits {
    /// 64 MiB, 64 megapixels and [`DEFAULT_MAX_DECODE_BYTES`]: any phone
    /// photo, nothing that would take gigabytes of memory.
    fn default() -> Self {
        Self { max_file_bytes: 64 << 20, max_pixels: 64_000_000, max_decode_bytes: DEFAULT_MAX_DECODE_BYTES }
    }
}

/// The memory that decoding and preparing an image of `pixels` pixels
/// takes, checked against [`Limits::max_decode_bytes`] before decoding:
/// the decoder's buffer (`bytes_per_pixel` each) and the greyscale copy
/// (4), plus the alpha plane and the opaque pixels' copy for transparent
/// images (8, and 1 for the allocator: 16-bit RGBA measured 20.4 in all); or, if more, what preparing it takes at full size once the
/// decoded buffer is freed (17). Measured with `cargo run --release -p
/// preprocess --example decode_memory` (`docs/PREDICT.md`).
///
/// ```
/// // A 24-megapixel RGB photo fits the default limit; a 62-megapixel bomb does not.
/// assert!(preprocess::memory_needed(24_000_000, 3, false) < preprocess::DEFAULT_MAX_DECODE_BYTES);
/// assert!(preprocess::memory_needed(62_410_000, 1, false) > preprocess::DEFAULT_MAX_DECODE_BYTES);
/// ```
pub fn memory_needed(pixels: u64, bytes_per_pixel: u64, has_alpha: bool) -> u64 {
    let decoding = bytes_per_pixel + 4 + if has_alpha { 9 } else { 0 };
    pixels.saturating_mul(decoding.max(PREPARE_BYTES_PER_PIXEL))
}

/// Bytes a pixel that preparing a large image takes at full size, once the
/// decoded buffer is freed: the greyscale input (4), its Gaussian before
/// the shrink (4) and the shrink's double-precision copy (8). Measured:
/// 16.5 for 16-megapixel images of every colour type.
const PREPARE_BYTES_PER_PIXEL: u64 = 17;

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
    // The decoder's own allocation cap, as a second line behind the checks below.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_decode_bytes.max(1 << 20));
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(PrepError::TooManyPixels { name: name.to_owned(), width, height, limit: limits.max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(PrepError::NoPixels { name: name.to_owned(), width: width as usize, height: height as usize });
    }
    let color = decoder.color_type();
    let needed = memory_needed(pixels, u64::from(color.bytes_per_pixel()), color.has_alpha());
    if needed > limits.max_decode_bytes {
        return Err(PrepError::TooMuchMemory {
            name: name.to_owned(),
            width,
            height,
            color: format!("{color:?}"),
            needed,
            limit: limits.max_decode_bytes,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    Ok(to_grey(&image))
}

/// Luma of an RGB triple, ITU-R BT.601.
fn luma([red, green, blue]: [f32; 3]) -> f32 {
    0.299 * red + 0.587 * green + 0.114 * blue
}

/// Rows converted at a time: the float copy the image crate's colour
/// conversion makes is one band, never the whole image.
const BAND_ROWS: u32 = 64;

/// Greyscale with transparency flattened onto a background (see
/// [`decode_grey`]). The image crate's own float conversion is used (its
/// values, bit for bit), one band of rows at a time, so that memory beyond
/// the decoded image is one `f32` per pixel (three with transparency).
fn to_grey(image: &DynamicImage) -> Array2<f32> {
    let (width, height) = (image.width(), image.height());
    let has_alpha = image.color().has_alpha();
    let pixels = width as usize * height as usize;
    let mut values = Vec::with_capacity(pixels);
    let mut alphas = Vec::with_capacity(if has_alpha { pixels } else { 0 });
    for top in (0..height).step_by(BAND_ROWS as usize) {
        let band = image.crop_imm(0, top, width, BAND_ROWS.min(height - top));
        if has_alpha {
            for pixel in band.to_rgba32f().pixels() {
                values.push(luma([pixel[0], pixel[1], pixel[2]]).clamp(0.0, 1.0));
                alphas.push(pixel[3]);
            }
        } else {
            values.extend(band.to_rgb32f().pixels().map(|pixel| luma(pixel.0).clamp(0.0, 1.0)));
        }
    }
    if has_alpha {
        let background = transparent_background(&values, &alphas);
        for (value, alpha) in values.iter_mut().zip(&alphas) {
            *value = alpha * *value + (1.0 - alpha) * background;
        }
    }
    Array2::from_shape_vec((height as usize, width as usize), values).expect("one value per pixel")
}

/// What transparent pixels stand for. Mostly opaque: a photo or scan with
/// transparent margins, so the paper (the opaque pixels' median). Mostly
/// transparent: a drawing on a transparent canvas, so the opposite of the
/// ink (the opaque pixels' mean, weighted by opacity).
fn transparent_background(values: &[f32], alphas: &[f32]) -> f32 {
    let mut opaque: Vec<f32> =
        values.iter().zip(alphas).filter(|(_, alpha)| **alpha >= 0.5).map(|(value, _)| *value).collect();
    if opaque.len() * 2 > values.len() {
        let middle = opaque.len() / 2;
        return *opaque.select_nth_unstable_by(middle, f32::total_cmp).1;
    }
    let weight: f32 = alphas.iter().sum();
    if weight == 0.0 {
        // Nothing visible at all: white paper, found blank later.
        return 1.0;
    }
    let ink = values.iter().zip(alphas).map(|(value, alpha)| value * alpha).sum::<f32>() / weight;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversion this module made before it went pixel by pixel: the
    /// image crate's full-size float RGB(A) copy.
    fn grey_through_float_copies(image: &DynamicImage) -> Array2<f32> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        if !image.color().has_alpha() {
            let values = image.to_rgb32f().pixels().map(|pixel| luma(pixel.0).clamp(0.0, 1.0)).collect();
            return Array2::from_shape_vec((height, width), values).unwrap();
        }
        let rgba = image.to_rgba32f();
        let values: Vec<f32> = rgba.pixels().map(|p| luma([p[0], p[1], p[2]]).clamp(0.0, 1.0)).collect();
        let alphas: Vec<f32> = rgba.pixels().map(|p| p[3]).collect();
        let background = transparent_background(&values, &alphas);
        let flat = values.iter().zip(&alphas).map(|(value, alpha)| alpha * value + (1.0 - alpha) * background);
        Array2::from_shape_vec((height, width), flat.collect()).unwrap()
    }

    #[test]
    fn grey_equals_the_float_copies_bit_for_bit_for_every_colour_type() {
        let (width, height) = (23u32, BAND_ROWS * 2 + 17);
        let sample = |x: u32, y: u32, channel: u32| ((x * 37 + y * 101 + channel * 59) % 256) as u8;
        let rgba8 = image::RgbaImage::from_fn(width, height, |x, y| {
            // Mostly opaque on one half of the images, mostly transparent on the other.
            let alpha = if (x + y) % 3 == 0 { 255 } else { sample(x, y, 3) };
            image::Rgba([sample(x, y, 0), sample(x, y, 1), sample(x, y, 2), alpha])
        });
        let transparent = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([sample(x, y, 0), 0, 0, if x == y { 255 } else { 0 }])
        });
        for source in [DynamicImage::ImageRgba8(rgba8), DynamicImage::ImageRgba8(transparent)] {
            let variants = [
                DynamicImage::ImageLuma8(source.to_luma8()),
                DynamicImage::ImageLumaA8(source.to_luma_alpha8()),
                DynamicImage::ImageRgb8(source.to_rgb8()),
                source.clone(),
                DynamicImage::ImageLuma16(source.to_luma16()),
                DynamicImage::ImageLumaA16(source.to_luma_alpha16()),
                DynamicImage::ImageRgb16(source.to_rgb16()),
                DynamicImage::ImageRgba16(source.to_rgba16()),
                DynamicImage::ImageRgb32F(source.to_rgb32f()),
                DynamicImage::ImageRgba32F(source.to_rgba32f()),
            ];
            for image in variants {
                let (new, old) = (to_grey(&image), grey_through_float_copies(&image));
                let same = new.iter().zip(&old).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{:?}: the banded grey differs from the whole-image float copies", image.color());
            }
        }
    }

    /// A PNG of `width` x `height` zero pixels of `color` and `depth`,
    /// written row by row: kilobytes on disk, however many pixels it claims.
    fn bomb(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(color);
            encoder.set_depth(depth);
            encoder.set_compression(png::Compression::High);
            let mut writer = encoder.write_header().unwrap();
            let row_bytes = width as usize * color.samples() * (depth as usize).div_ceil(8);
            let mut stream = writer.stream_writer().unwrap();
            let row = vec![0u8; row_bytes];
            for _ in 0..height {
                std::io::Write::write_all(&mut stream, &row).unwrap();
            }
            stream.finish().unwrap();
        }
        out
    }

    #[test]
    fn decompression_bombs_are_refused_by_memory_before_decoding() {
        // 62 megapixels of grey (under the pixel limit) in about 80 KB.
        let grey = bomb(7900, 7900, png::ColorType::Grayscale, png::BitDepth::Eight);
        assert!(grey.len() < 200_000, "{} bytes", grey.len());
        let started = std::time::Instant::now();
        let error = decode_grey(&grey, "grey.png", Limits::default()).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "refused before decoding");
        assert!(matches!(error, PrepError::TooMuchMemory { needed: 1_060_970_000, .. }), "{error}");
        assert!(error.to_string().contains(&format!("more than the limit of {DEFAULT_MAX_DECODE_BYTES} bytes")));
        // 16-bit RGBA costs 8 bytes a pixel decoded, 21 in all: 6,000 x 6,000 is over.
        let deep = bomb(6000, 6000, png::ColorType::Rgba, png::BitDepth::Sixteen);
        let error = decode_grey(&deep, "deep.png", Limits::default()).unwrap_err();
        assert!(matches!(error, PrepError::TooMuchMemory { needed: 756_000_000, .. }), "{error}");
        // Within the limit the same kind of file decodes.
        let small = bomb(1000, 1000, png::ColorType::Rgba, png::BitDepth::Sixteen);
        assert_eq!(decode_grey(&small, "small.png", Limits::default()).unwrap().dim(), (1000, 1000));
        let tight = Limits { max_decode_bytes: 1000 * 1000 * 21 - 1, ..Limits::default() };
        assert!(matches!(decode_grey(&small, "small.png", tight), Err(PrepError::TooMuchMemory { .. })));
    }
}
