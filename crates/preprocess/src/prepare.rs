//! A greyscale image of a digit (or a Fashion-MNIST item) to the 28x28
//! input the network expects, following how the data sets were made.
//!
//! MNIST's digits were scanned, size-normalised to fit a 20x20 box keeping
//! their aspect ratio (anti-aliased, hence grey levels), and placed in a
//! 28x28 field with their centre of mass at the centre; ink is white (1) on
//! black (0). Fashion-MNIST's items were trimmed, scaled so the longer side
//! is 28 and centred by their bounding box. [`prepare`] does the same to a
//! photo or scan:
//!
//! 1. shrink very large images to a working size of [`WORKING_SIDE`];
//! 2. smooth away sensor noise and paper texture (a Gaussian whose width
//!    follows the image's size);
//! 3. decide the polarity: the paper is the image's typical (median) value;
//!    light paper means dark ink, which is inverted ([`Invert`]);
//!    the rest works on the ink's contrast with the paper either way;
//! 4. estimate the paper's brightness locally (a grey-level closing as wide
//!    as a third of the image removes every stroke and keeps the lighting),
//!    measure ink as a fraction of it, and scale by the strongest ink;
//! 5. estimate the remaining noise (median absolute deviation) and fade
//!    everything within four of its standard deviations to 0;
//! 6. drop specks: connected pieces of ink holding under 2% of the ink;
//! 7. crop to the ink's bounding box, smooth in proportion to the
//!    reduction (so thin strokes survive as grey, not gaps) and scale the
//!    longer side to the layout's box;
//! 8. match MNIST's tone: as large a share of the ink saturated as in MNIST;
//! 9. place the result in 28x28 by centre of mass or bounding box.

use augment::Order;
use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use ndarray_ndimage::{BorderMode, PadMode};

use crate::{PrepError, SIDE};

/// Images larger than this (longer side, pixels) are first shrunk to it:
/// the result has 20 pixels, so more is only cost.
pub const WORKING_SIDE: usize = 256;
/// Pieces of ink holding less than this fraction of all the ink are specks.
const MIN_PIECE_FRACTION: f32 = 0.02;
/// The strongest mark must stand out by this much (0 to 1) ...
const MIN_CONTRAST: f32 = 0.06;
/// ... and by this many noise standard deviations to count as ink.
const MIN_CONTRAST_IN_NOISE: f32 = 8.0;
/// Ink within this many noise standard deviations of the paper fades to 0.
const NOISE_THRESHOLD: f32 = 4.0;
/// The share of MNIST's ink (pixels above [`INK_FLOOR`]) that is
/// saturated (at least 250 of 255), over its training images (measured by
/// this crate's tests): [`prepare`] gives its output the same share.
pub const MNIST_SATURATED_SHARE: f64 = 0.41;
/// Pixels above this fraction of full ink count as ink for [`MNIST_SATURATED_SHARE`].
pub const INK_FLOOR: f32 = 0.05;
/// The centre of mass of MNIST's digits, (row, column), on average over the
/// 60,000 training images (measured by this crate's tests): where
/// [`Layout::Mnist`] puts a digit's centre of mass.
pub const MNIST_CENTRE_OF_MASS: (f64, f64) = (14.0, 14.0);

/// Whether to invert the image (make dark ink white on black).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Invert {
    /// Invert when the paper is lighter than the ink (the usual photo or scan).
    #[default]
    Auto,
    /// Always invert: the image is dark ink on light paper.
    Yes,
    /// Never invert: the image is already light ink on a dark background.
    No,
}

/// Which data set's conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The longer side scaled to 20 pixels, the centre of mass at the centre.
    #[default]
    Mnist,
    /// The longer side scaled to 28 pixels, the bounding box centred.
    FashionMnist,
}

impl From<datasets::PhotoLayout> for Layout {
    fn from(layout: datasets::PhotoLayout) -> Self {
        match layout {
            datasets::PhotoLayout::CentredByMass => Layout::Mnist,
            datasets::PhotoLayout::FilledAndCentred => Layout::FashionMnist,
        }
    }
}

impl Layout {
    /// The ink that counts for the extent scaled to [`Layout::box_side`]:
    /// MNIST's core (see [`CORE_THRESHOLD`]); for Fashion-MNIST, whose
    /// photos were trimmed to anything that is not background, all of it.
    fn extent_threshold(self) -> f32 {
        match self {
            Layout::Mnist => CORE_THRESHOLD - f32::EPSILON,
            Layout::FashionMnist => 0.0,
        }
    }

    /// The longer side of the scaled ink, in pixels.
    pub fn box_side(self) -> usize {
        match self {
            Layout::Mnist => 20,
            Layout::FashionMnist => SIDE,
        }
    }
}

/// How to prepare an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Polarity.
    pub invert: Invert,
    /// The data set's conventions.
    pub layout: Layout,
}

/// An image ready for the network, and what preparing it found.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// `[28, 28]`, white (1) ink on black (0).
    pub image: Array2<f32>,
    /// Whether the image was inverted.
    pub inverted: bool,
    /// The bounding box of the ink's core (where it covers at least half a
    /// pixel) in the input, `(top, left, height, width)`, in input pixels.
    pub ink_box: (usize, usize, usize, usize),
}

/// Prepares `grey` (`[height, width]`, 0 black to 1 white) for the network;
/// `name` names the source in errors. A blank image is
/// [`PrepError::NoInk`]; a non-finite pixel is [`PrepError::NonFinite`].
///
/// ```
/// use preprocess::{Invert, Layout, Options, prepare};
///
/// // White ink on black, as MNIST: not inverted, scaled to a 28-pixel-high
/// // box for Fashion-MNIST's layout.
/// let mut grey = ndarray::Array2::zeros((60, 60));
/// grey.slice_mut(ndarray::s![5..55, 25..35]).fill(1.0f32);
/// let options = Options { invert: Invert::Auto, layout: Layout::FashionMnist };
/// let prepared = prepare(grey.view(), &options, "bar.png").unwrap();
/// assert!(!prepared.inverted);
/// assert_eq!(prepared.ink_box, (5, 25, 50, 10));
/// assert!(prepared.image.column(14).iter().all(|&v| v > 0.5));
/// ```
pub fn prepare(grey: ArrayView2<'_, f32>, options: &Options, name: &str) -> Result<Prepared, PrepError> {
    check_pixels(grey, name)?;
    let (working, working_scale) = working_copy(grey);
    let smoothed = denoise(&working);
    let inverted = match options.invert {
        Invert::Yes => true,
        Invert::No => false,
        Invert::Auto => paper_is_lighter(&smoothed),
    };
    let ink = isolate_ink(&ink_contrast(&smoothed, inverted), name)?;
    let ink = drop_specks(ink);
    let box_side = options.layout.box_side();
    let core = bounding_box(&ink, options.layout.extent_threshold()).expect("the strongest ink is 1");
    let (top, left, height, width) = crop_box(&ink, core, box_side);
    let cropped = ink.slice(s![top..top + height, left..left + width]);
    let factor = box_side as f64 / core.2.max(core.3) as f64;
    let scaled = scale(cropped, factor);
    let image = place(&scaled, options.layout);
    let to_input = |value: usize| ((value as f64) / working_scale).round() as usize;
    let ink_box = (to_input(core.0), to_input(core.1), to_input(core.2).max(1), to_input(core.3).max(1));
    Ok(Prepared { image, inverted, ink_box })
}

fn check_pixels(grey: ArrayView2<'_, f32>, name: &str) -> Result<(), PrepError> {
    let (height, width) = grey.dim();
    if height == 0 || width == 0 {
        return Err(PrepError::NoPixels { name: name.to_owned(), width, height });
    }
    if let Some(((row, col), &value)) = grey.indexed_iter().find(|(_, value)| !value.is_finite()) {
        return Err(PrepError::NonFinite { name: name.to_owned(), row, col, value });
    }
    Ok(())
}

/// The image at no more than [`WORKING_SIDE`] pixels a side, and the factor applied.
fn working_copy(grey: ArrayView2<'_, f32>) -> (Array2<f32>, f64) {
    let longer = grey.nrows().max(grey.ncols());
    if longer <= WORKING_SIDE {
        return (grey.mapv(|value| value.clamp(0.0, 1.0)), 1.0);
    }
    let factor = WORKING_SIDE as f64 / longer as f64;
    (resize(grey, factor, BorderMode::Nearest).mapv(|value| value.clamp(0.0, 1.0)), factor)
}

/// Scales by `factor` (the same on both axes, so the aspect ratio holds)
/// with the augment crate's SciPy-exact zoom. Shrinking first smooths with
/// a Gaussian of standard deviation `(1 / factor - 1) / 3.5`, the spread of
/// averaging over each output pixel's area (`1 / (factor * sqrt(12))`, which
/// is how MNIST's anti-aliasing made grey levels), so thin strokes become
/// grey instead of falling between samples. (scikit-image's
/// `(1 / factor - 1) / 2` blurs strokes visibly more than MNIST's.)
fn resize(image: ArrayView2<'_, f32>, factor: f64, border: BorderMode<f32>) -> Array2<f32> {
    let sigma = (1.0 / factor - 1.0) / 3.5;
    let smoothed;
    let source = if sigma > 0.25 {
        smoothed = gaussian(image, sigma as f32, border);
        smoothed.view()
    } else {
        image.reborrow()
    };
    // Linear interpolation: smooth enough after the Gaussian, and it never
    // overshoots (cubic splines ring around strokes).
    augment::zoom(source, factor, Order::Linear).expect("a non-empty image and a positive factor")
}

/// A Gaussian filter (ndarray-ndimage's) that works on any size: an image
/// no larger than the filter's radius is padded by the radius first, since
/// ndarray-ndimage panics when the radius exceeds an axis. A larger one is
/// filtered as it is (for the nearest and zero borders, whose padding it
/// reproduces bit for bit), which saves a large photo two full-size copies.
fn gaussian(image: ArrayView2<'_, f32>, sigma: f32, border: BorderMode<f32>) -> Array2<f32> {
    const TRUNCATE: usize = 4;
    let radius = (TRUNCATE as f32 * sigma + 0.5) as usize;
    let pad_mode = match border {
        BorderMode::Constant(value) => PadMode::Constant(value),
        _ => PadMode::Edge,
    };
    // A constant border other than 0 is not what padding gives: the padded
    // margin is filtered too, and weights that do not sum to exactly 1 change it.
    let border_is_padding = matches!(border, BorderMode::Nearest) || border == BorderMode::Constant(0.0);
    if border_is_padding && radius < image.nrows().min(image.ncols()) {
        return ndarray_ndimage::gaussian_filter(&image, sigma, 0, border, TRUNCATE);
    }
    let padded = ndarray_ndimage::pad(&image, &[[radius, radius]], pad_mode);
    let filtered = ndarray_ndimage::gaussian_filter(&padded, sigma, 0, border, TRUNCATE);
    filtered.slice(s![radius..radius + image.nrows(), radius..radius + image.ncols()]).to_owned()
}

/// Smooths sensor noise and paper texture at a scale that follows the
/// image's size (a 320th of its longer side: nothing on images under 160
/// pixels, 0.8 pixels at the working size). More blurs strokes beyond
/// MNIST's, which costs accuracy (measured: `docs/PREDICT.md`).
fn denoise(image: &Array2<f32>) -> Array2<f32> {
    let sigma = image.nrows().max(image.ncols()) as f32 / 320.0;
    if sigma < 0.5 { image.clone() } else { gaussian(image.view(), sigma, BorderMode::Nearest) }
}

/// The value at the given quantile (0 to 1) of `values`, reordering them.
fn quantile(values: &mut [f32], q: f64) -> f32 {
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(index, f32::total_cmp).1
}

/// Whether the paper (the median, since ink covers less than half the
/// image) is nearer the brightest value than the darkest: dark ink on light paper.
fn paper_is_lighter(image: &Array2<f32>) -> bool {
    let mut values = image.iter().copied().collect::<Vec<_>>();
    let paper = quantile(&mut values, 0.5);
    let (darkest, brightest) = values.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    paper > (darkest + brightest) / 2.0
}

/// How much darker (dark ink) or brighter (light ink) than the paper
/// around it each pixel is. The paper's brightness is estimated locally, so
/// uneven lighting is no ink: a grey-level closing (maximum then minimum
/// filter) a third of the image wide removes every dark stroke narrower than
/// that and keeps slow changes of lighting (an opening does the same for
/// light strokes). Dark ink is measured as a fraction of the paper's
/// brightness, since light multiplies: ink reads the same in the shadow.
fn ink_contrast(smoothed: &Array2<f32>, dark_ink: bool) -> Array2<f32> {
    let size = (smoothed.nrows().max(smoothed.ncols()) / 3).clamp(1, smoothed.nrows().min(smoothed.ncols()));
    if dark_ink {
        let dilated = ndarray_ndimage::maximum_filter(smoothed, size, BorderMode::Nearest, 0);
        let paper = ndarray_ndimage::minimum_filter(&dilated, size, BorderMode::Nearest, 0);
        ndarray::Zip::from(&paper).and(smoothed).map_collect(|&paper, &value| (paper - value) / paper.max(0.02))
    } else {
        let eroded = ndarray_ndimage::minimum_filter(smoothed, size, BorderMode::Nearest, 0);
        smoothed - &ndarray_ndimage::maximum_filter(&eroded, size, BorderMode::Nearest, 0)
    }
}

/// Ink in `[0, 1]` on a 0 background from its contrast with the paper:
/// scaled by the strongest mark, noise faded out. Fails when nothing stands out.
fn isolate_ink(residual: &Array2<f32>, name: &str) -> Result<Array2<f32>, PrepError> {
    let mut values: Vec<f32> = residual.iter().copied().collect();
    let paper = quantile(&mut values, 0.5);
    let strongest = values.iter().copied().fold(f32::MIN, f32::max);
    values.iter_mut().for_each(|value| *value = (*value - paper).abs());
    // 1.4826 * MAD estimates a normal distribution's standard deviation.
    let noise = 1.4826 * quantile(&mut values, 0.5);
    let contrast = strongest - paper;
    let needed = MIN_CONTRAST.max(MIN_CONTRAST_IN_NOISE * noise);
    if contrast < needed {
        return Err(PrepError::NoInk { name: name.to_owned(), contrast, noise, needed });
    }
    let threshold = (NOISE_THRESHOLD * noise / contrast).clamp(0.02, 0.5);
    Ok(residual.mapv(|value| (((value - paper) / contrast - threshold) / (1.0 - threshold)).clamp(0.0, 1.0)))
}

/// Removes pieces of ink (8-connected) that hold less than
/// [`MIN_PIECE_FRACTION`] of all the ink: dust, noise that survived, paper
/// texture. Pieces of a digit written in several strokes are far larger.
fn drop_specks(mut ink: Array2<f32>) -> Array2<f32> {
    let mask: Array3<bool> = ink.mapv(|value| value > 0.0).insert_axis(Axis(0));
    // 8-connectivity within the one plane: only the middle plane of the 3x3x3 structure is set.
    let mut structure = Array3::from_elem((3, 3, 3), false);
    structure.slice_mut(s![1, .., ..]).fill(true);
    let (labels, n_pieces) = ndarray_ndimage::label::<_, u32>(&mask, &structure);
    if n_pieces <= 1 {
        return ink;
    }
    let mut mass = vec![0f32; n_pieces + 1];
    for (label, value) in labels.iter().zip(&ink) {
        mass[*label as usize] += value;
    }
    let total: f32 = mass[1..].iter().sum();
    for (label, value) in labels.iter().zip(ink.iter_mut()) {
        if *label > 0 && mass[*label as usize] < MIN_PIECE_FRACTION * total {
            *value = 0.0;
        }
    }
    ink
}

/// `(top, left, height, width)` of the pixels above `threshold`, if any.
fn bounding_box(ink: &Array2<f32>, threshold: f32) -> Option<(usize, usize, usize, usize)> {
    let above = |line: ndarray::ArrayView1<'_, f32>| line.iter().any(|&v| v > threshold);
    let rows: Vec<usize> = ink.outer_iter().enumerate().filter(|(_, row)| above(row.view())).map(|(i, _)| i).collect();
    let cols: Vec<usize> =
        ink.axis_iter(Axis(1)).enumerate().filter(|(_, col)| above(col.view())).map(|(i, _)| i).collect();
    let (top, bottom) = (*rows.first()?, *rows.last()?);
    let (left, right) = (*cols.first()?, *cols.last()?);
    Some((top, left, bottom - top + 1, right - left + 1))
}

/// Where the ink covers at least half a pixel: the extent MNIST's
/// size normalisation measured (its digits were binary before they were
/// scaled and anti-aliased, and the 20-pixel box holds that extent).
const CORE_THRESHOLD: f32 = 0.5;

/// The part of the image to scale: every pixel of ink, but no further
/// from the `core` than the field leaves room for once the core is scaled
/// to `box_side` (4 pixels a side for MNIST: its anti-aliased edges).
fn crop_box(
    ink: &Array2<f32>,
    (core_top, core_left, core_height, core_width): (usize, usize, usize, usize),
    box_side: usize,
) -> (usize, usize, usize, usize) {
    let (top, left, height, width) = bounding_box(ink, 0.0).expect("the strongest ink is 1");
    let pixels_per_output = core_height.max(core_width) as f64 / box_side as f64;
    let margin = (((SIDE - box_side) / 2) as f64 * pixels_per_output).floor() as usize;
    let clip = |start: usize, len: usize, core_start: usize, core_len: usize| {
        let first = start.max(core_start.saturating_sub(margin));
        let end = (start + len).min(core_start + core_len + margin);
        (first, end - first)
    };
    let (top, height) = clip(top, height, core_top, core_height);
    let (left, width) = clip(left, width, core_left, core_width);
    (top, left, height, width)
}

/// Scales the cropped ink by `factor`. A very thin crop (a horizontal line)
/// is padded first so its shorter side keeps at least one pixel.
fn scale(cropped: ArrayView2<'_, f32>, factor: f64) -> Array2<f32> {
    let (height, width) = cropped.dim();
    let shorter = height.min(width);
    let needed = (1.0 / factor).ceil() as usize + 1;
    let padded;
    let source = if (shorter as f64 * factor).round() < 1.0 {
        let extra = needed.saturating_sub(shorter);
        let pad = if height < width {
            [[extra / 2, extra - extra / 2], [0, 0]]
        } else {
            [[0, 0], [extra / 2, extra - extra / 2]]
        };
        padded = ndarray_ndimage::pad(&cropped, &pad, PadMode::Constant(0.0));
        padded.view()
    } else {
        cropped.reborrow()
    };
    match_mnist_tone(resize(source, factor, BorderMode::Constant(0.0)))
}

/// Scales the ink's grey levels so that the same share of it is saturated
/// as in MNIST ([`MNIST_SATURATED_SHARE`]). MNIST's strokes are solid white
/// with grey edges; a photo's, after smoothing, peak lower and fade wider,
/// and networks trained on MNIST read such faint strokes noticeably worse
/// (measured: `docs/PREDICT.md`).
fn match_mnist_tone(scaled: Array2<f32>) -> Array2<f32> {
    let strongest = scaled.iter().copied().fold(0.0f32, f32::max);
    let mut ink: Vec<f32> = scaled.iter().copied().filter(|&value| value > INK_FLOOR * strongest).collect();
    if ink.is_empty() {
        return scaled;
    }
    let white = quantile(&mut ink, 1.0 - MNIST_SATURATED_SHARE).max(f32::MIN_POSITIVE);
    scaled.mapv(|value| (value / white).clamp(0.0, 1.0))
}

/// Centre of mass `(row, col)` of a non-negative image.
fn centre_of_mass(image: &Array2<f32>) -> (f64, f64) {
    let (mut total, mut row_sum, mut col_sum) = (0.0, 0.0, 0.0);
    for ((row, col), &value) in image.indexed_iter() {
        let value = f64::from(value);
        total += value;
        row_sum += value * row as f64;
        col_sum += value * col as f64;
    }
    if total == 0.0 { (0.0, 0.0) } else { (row_sum / total, col_sum / total) }
}

/// Puts the scaled ink into the 28x28 field: its centre of mass on
/// [`MNIST_CENTRE_OF_MASS`] (whole pixels, as MNIST did) or its box centred.
/// The core of the ink (see [`CORE_THRESHOLD`]) always stays inside the
/// field; faint anti-aliased edges beyond it may be cut.
fn place(scaled: &Array2<f32>, layout: Layout) -> Array2<f32> {
    let (height, width) = scaled.dim();
    let (core_top, core_left, core_height, core_width) =
        bounding_box(scaled, CORE_THRESHOLD - f32::EPSILON).unwrap_or((0, 0, height, width));
    // The offsets that keep the core inside: from -core_start to SIDE - core_end.
    let keep_inside = |offset: i64, core_start: usize, core_len: usize| {
        let (lowest, highest) = (-(core_start as i64), SIDE as i64 - (core_start + core_len) as i64);
        if lowest > highest { (lowest + highest) / 2 } else { offset.clamp(lowest, highest) }
    };
    let (top, left) = match layout {
        Layout::Mnist => {
            let (row, col) = centre_of_mass(scaled);
            let to_target = |target: f64, at: f64| (target - at).round() as i64;
            (
                keep_inside(to_target(MNIST_CENTRE_OF_MASS.0, row), core_top, core_height),
                keep_inside(to_target(MNIST_CENTRE_OF_MASS.1, col), core_left, core_width),
            )
        }
        Layout::FashionMnist => {
            let centred = |start: usize, len: usize| (SIDE as i64 - len as i64) / 2 - start as i64;
            (centred(core_top, core_height), centred(core_left, core_width))
        }
    };
    let mut image = Array2::zeros((SIDE, SIDE));
    for ((row, col), &value) in scaled.indexed_iter() {
        let (to_row, to_col) = (row as i64 + top, col as i64 + left);
        if (0..SIDE as i64).contains(&to_row) && (0..SIDE as i64).contains(&to_col) {
            image[[to_row as usize, to_col as usize]] = value;
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaussian_works_on_images_smaller_than_its_radius() {
        let image = Array2::from_elem((3, 2), 1.0f32);
        let smoothed = gaussian(image.view(), 5.0, BorderMode::Nearest);
        assert_eq!(smoothed.dim(), (3, 2));
        assert!(smoothed.iter().all(|&v| (v - 1.0).abs() < 1e-5), "{smoothed:?}");
    }

    #[test]
    fn filtering_unpadded_gives_the_padded_values_bit_for_bit() {
        let image = Array2::from_shape_fn((53, 71), |(row, col)| ((row * 31 + col * 17) % 97) as f32 / 96.0);
        for border in [BorderMode::Nearest, BorderMode::Constant(0.0), BorderMode::Constant(0.25), BorderMode::Reflect]
        {
            for sigma in [0.8f32, 3.0, 7.5] {
                let radius = (4.0 * sigma + 0.5) as usize;
                let pad_mode = match border {
                    BorderMode::Constant(value) => PadMode::Constant(value),
                    _ => PadMode::Edge,
                };
                let padded = ndarray_ndimage::pad(&image, &[[radius, radius]], pad_mode);
                let filtered = ndarray_ndimage::gaussian_filter(&padded, sigma, 0, border, 4);
                let expected = filtered.slice(s![radius..radius + 53, radius..radius + 71]);
                let got = gaussian(image.view(), sigma, border);
                let same = got.iter().zip(expected.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{border:?}, sigma {sigma}");
            }
        }
    }

    #[test]
    fn a_speck_is_dropped_and_a_second_stroke_is_kept() {
        let mut ink = Array2::zeros((40, 40));
        ink.slice_mut(s![5..35, 10..14]).fill(1.0f32);
        ink.slice_mut(s![5..9, 20..35]).fill(1.0);
        ink[[38, 38]] = 1.0;
        let cleaned = drop_specks(ink.clone());
        assert_eq!(cleaned[[38, 38]], 0.0);
        assert_eq!(cleaned.sum(), ink.sum() - 1.0);
    }

    #[test]
    fn a_one_pixel_line_keeps_a_row() {
        let line = Array2::from_elem((1, 400), 1.0f32);
        let scaled = scale(line.view(), 20.0 / 400.0);
        assert_eq!(scaled.ncols(), 20);
        assert!(scaled.nrows() >= 1 && scaled.iter().any(|&v| v > 0.0));
    }

    #[test]
    fn placement_by_mass_moves_the_centre_of_mass_to_the_target() {
        let mut scaled = Array2::zeros((20, 10));
        scaled.slice_mut(s![5..10, ..]).fill(1.0f32);
        let placed = place(&scaled, Layout::Mnist);
        let (row, col) = centre_of_mass(&placed);
        assert!((row - MNIST_CENTRE_OF_MASS.0).abs() <= 0.5 && (col - MNIST_CENTRE_OF_MASS.1).abs() <= 0.5);
        // Mass far to one side of a 20-pixel core: the core stops at the field's edge.
        let mut scaled = Array2::zeros((20, 10));
        scaled.slice_mut(s![0..2, ..]).fill(1.0f32);
        scaled.slice_mut(s![.., 0]).fill(0.6);
        assert_eq!(
            bounding_box(&place(&scaled, Layout::Mnist), 0.0).map(|(top, _, height, _)| (top, height)),
            Some((8, 20))
        );
        // Fashion-MNIST centres the box instead.
        let placed = place(&scaled, Layout::FashionMnist);
        assert_eq!(bounding_box(&placed, 0.0), Some((4, 9, 20, 10)));
    }
}
