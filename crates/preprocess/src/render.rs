//! MNIST digits rendered as people's photos of them, for tests and
//! measurements of [`prepare`](crate::prepare()): scaled up, dark ink on
//! grey or tinted paper, off-centre with a margin, sensor noise, a little
//! uneven lighting, saved as colour JPEG.

use std::f32::consts::TAU;

use augment::Order;
use image::RgbImage;
use ndarray::{ArrayView2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The ranges a photo's look is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoStyle {
    /// Side of the square photo, pixels (inclusive range).
    pub side: (u32, u32),
    /// The 28x28 field's share of the photo's side (the rest is margin).
    pub field_share: (f32, f32),
    /// Paper brightness.
    pub paper: (f32, f32),
    /// How far each colour channel of the paper may stray (a tint).
    pub tint: f32,
    /// Ink brightness.
    pub ink: (f32, f32),
    /// Standard deviation of the sensor noise per channel.
    pub noise: (f32, f32),
    /// Brightness change of the lighting from one corner to the other.
    pub lighting: f32,
    /// JPEG quality.
    pub jpeg_quality: u8,
}

impl Default for PhotoStyle {
    /// 100 to 400 pixels, the digit's field 45-75% of the side, paper 0.55-0.95
    /// tinted by up to 0.08 a channel, ink 0.02-0.25, noise 0.01-0.04, lighting
    /// varying by 0.06, JPEG quality 75.
    fn default() -> Self {
        Self {
            side: (100, 400),
            field_share: (0.45, 0.75),
            paper: (0.55, 0.95),
            tint: 0.08,
            ink: (0.02, 0.25),
            noise: (0.01, 0.04),
            lighting: 0.06,
            jpeg_quality: 75,
        }
    }
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
}

/// Renders `digit` (28x28, MNIST's white-on-black values in `[0, 1]`) as a
/// colour photo drawn from `style`; the same `seed` gives the same photo.
///
/// ```
/// use preprocess::render::{PhotoStyle, render_photo};
///
/// let mut digit = ndarray::Array2::zeros((28, 28));
/// digit.slice_mut(ndarray::s![4..24, 12..16]).fill(1.0f32);
/// let photo = render_photo(digit.view(), &PhotoStyle::default(), 7);
/// assert!((100..=400).contains(&photo.width()) && photo.width() == photo.height());
/// ```
pub fn render_photo(digit: ArrayView2<'_, f32>, style: &PhotoStyle, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let side = rng.random_range(style.side.0..=style.side.1) as usize;
    let field = ((side as f32 * rng.random_range(style.field_share.0..=style.field_share.1)) as usize).max(28);
    let zoomed = augment::zoom(digit, field as f64 / 28.0, Order::Linear).expect("a 28x28 digit");
    let (rows, cols) = zoomed.dim();
    let (top, left) = (rng.random_range(0..=side - rows), rng.random_range(0..=side - cols));
    let mut coverage = ndarray::Array2::<f32>::zeros((side, side));
    coverage.slice_mut(s![top..top + rows, left..left + cols]).assign(&zoomed.mapv(|v| v.clamp(0.0, 1.0)));

    let brightness = rng.random_range(style.paper.0..=style.paper.1);
    let paper: [f32; 3] = std::array::from_fn(|_| brightness + rng.random_range(-style.tint..=style.tint));
    let darkness = rng.random_range(style.ink.0..=style.ink.1);
    // Pens are black or blue.
    let ink = [darkness, darkness, darkness + rng.random_range(0.0..0.15)];
    let noise = rng.random_range(style.noise.0..=style.noise.1);
    let light_angle = rng.random_range(0.0..TAU);
    let (light_row, light_col) = (light_angle.sin(), light_angle.cos());

    let mut photo = RgbImage::new(side as u32, side as u32);
    for (x, y, pixel) in photo.enumerate_pixels_mut() {
        let v = coverage[[y as usize, x as usize]];
        let position = (y as f32 * light_row + x as f32 * light_col) / side as f32;
        let light = 1.0 + style.lighting * (position - 0.5);
        for channel in 0..3 {
            let value = (paper[channel] * (1.0 - v) + ink[channel] * v) * light + noise * normal(&mut rng);
            pixel[channel] = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    photo
}

/// A photo as JPEG bytes at `quality` (1-100).
///
/// ```
/// let photo = image::RgbImage::new(16, 16);
/// let jpeg = preprocess::render::encode_jpeg(&photo, 75);
/// assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
/// ```
pub fn encode_jpeg(photo: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(photo)
        .expect("encoding a JPEG in memory cannot fail");
    bytes
}
