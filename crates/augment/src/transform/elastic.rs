//! Elastic distortions (Simard, Steinkraus and Platt, 2003): each pixel is
//! moved by a random displacement field, smooth enough that strokes bend
//! rather than break. `elastic:ALPHA,SIGMA` (`elastic:34,4`, the paper's
//! setting for MNIST):
//!
//! 1. two fields of independent uniform draws in [-1, 1], one per axis,
//!    from the image's key (a stream of their own, so composing with the
//!    seed's affine leaves its draws unchanged);
//! 2. each smoothed by a Gaussian of standard deviation `SIGMA` pixels
//!    (`ndarray_ndimage::gaussian_filter`, zeros beyond the edge, truncated
//!    at 4 standard deviations: `scipy.ndimage.gaussian_filter(field,
//!    SIGMA, mode='constant')`) and scaled by `ALPHA`;
//! 3. the image sampled at `(row + dy, col + dx)` with the crate's spline
//!    interpolation, cubic by default, linear (Simard's choice, about twice
//!    as fast) with `elastic:ALPHA,SIGMA,1`
//!    (`scipy.ndimage.map_coordinates(image, ..., order=ORDER, mode='constant')`).
//!
//! The golden tests compare steps 2 and 3 with SciPy.

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use ndarray_ndimage::{BorderMode, gaussian_filter1d};
use rand::Rng;

use super::{ImageKey, Transform};
use crate::kernels::map_coordinates_into;
use crate::original::Scratch;
use crate::{AugmentError, Order};

/// The Gaussian is cut off at this many standard deviations (SciPy's default).
const TRUNCATE: usize = 4;
/// Separates this transform's random stream from the seed's affine draws.
const STREAM: u64 = 0x656c_6173_7469_6321;

/// An elastic distortion: random displacements, smoothed by `sigma` and scaled by `alpha`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elastic {
    /// The displacements' scale, in pixels per unit of the smoothed field.
    pub alpha: f64,
    /// The smoothing Gaussian's standard deviation, in pixels.
    pub sigma: f64,
    /// How the displaced image is sampled (cubic or linear).
    pub order: Order,
}

/// The Gaussian's reach in pixels on each side, as ndarray-ndimage and SciPy compute it.
fn radius(sigma: f64) -> usize {
    (TRUNCATE as f64 * sigma + 0.5) as usize
}

/// The Gaussian smoothing of one axis of `len` samples as a `len x len`
/// matrix (zeros beyond the edge): column `k` is ndarray-ndimage's
/// `gaussian_filter1d` of the unit impulse at `k`, so the matrix is exactly
/// the filter it applies. Smoothing a field is then two small matrix
/// products, several times faster than filtering it along each axis.
fn smoothing_matrix(sigma: f64, len: usize) -> Array2<f64> {
    let mut matrix = Array2::zeros((len, len));
    for k in 0..len {
        let mut impulse = Array1::zeros(len);
        impulse[k] = 1.0;
        let response = gaussian_filter1d(&impulse, sigma, Axis(0), 0, BorderMode::Constant(0.0), TRUNCATE);
        matrix.column_mut(k).assign(&response);
    }
    matrix
}

/// The smoothing of fields of one shape with one `sigma`, kept in the
/// thread's scratch space and rebuilt only when either changes.
#[derive(Debug, Clone)]
pub(crate) struct SmoothingPlan {
    sigma: f64,
    shape: (usize, usize),
    /// Smooths along the rows axis from the left.
    rows: Array2<f64>,
    /// Smooths along the columns axis from the right (the columns' matrix, transposed).
    cols_transposed: Array2<f64>,
}

impl SmoothingPlan {
    fn new(sigma: f64, (rows, cols): (usize, usize)) -> Result<Self, AugmentError> {
        if radius(sigma) > rows.min(cols) {
            return Err(AugmentError::BadRanges {
                reason: format!(
                    "elastic sigma {sigma} reaches {} pixels, more than the {rows}x{cols} image",
                    radius(sigma)
                ),
            });
        }
        let cols_transposed = smoothing_matrix(sigma, cols).reversed_axes().as_standard_layout().to_owned();
        Ok(Self { sigma, shape: (rows, cols), rows: smoothing_matrix(sigma, rows), cols_transposed })
    }

    /// The plan in `slot` if it fits, else a new one put there.
    fn cached(slot: &mut Option<SmoothingPlan>, sigma: f64, shape: (usize, usize)) -> Result<&Self, AugmentError> {
        let fits = slot.as_ref().is_some_and(|plan| plan.sigma.to_bits() == sigma.to_bits() && plan.shape == shape);
        if !fits {
            *slot = Some(Self::new(sigma, shape)?);
        }
        Ok(slot.as_ref().expect("filled above"))
    }

    /// `raw` smoothed along both axes and scaled by `alpha`.
    fn smooth(&self, raw: ArrayView2<'_, f64>, alpha: f64) -> Array2<f64> {
        self.rows.dot(&raw).dot(&self.cols_transposed) * alpha
    }
}

/// `scipy.ndimage.gaussian_filter(raw, sigma, mode='constant', cval=0) * alpha`.
///
/// # Errors
/// [`AugmentError::BadRanges`] when the Gaussian reaches further than the field is long.
pub fn smooth_field(raw: ArrayView2<'_, f64>, sigma: f64, alpha: f64) -> Result<Array2<f64>, AugmentError> {
    Ok(SmoothingPlan::new(sigma, raw.dim())?.smooth(raw, alpha))
}

impl Elastic {
    /// The raw uniform fields of the image with `key`, `shape` each: row
    /// displacements, then column ones. Each value is a 32-bit draw mapped
    /// onto [-1, 1] (half the generator's work of 64-bit draws).
    pub fn raw_fields(key: ImageKey, shape: (usize, usize)) -> (Array2<f64>, Array2<f64>) {
        let mut rng = key.rng(STREAM);
        let mut bits = vec![0u32; 2 * shape.0 * shape.1];
        rng.fill(&mut bits[..]);
        let scale = 2.0 / f64::from(u32::MAX);
        let mut values = bits.into_iter().map(|bits| f64::from(bits) * scale - 1.0);
        let mut field = || Array2::from_shape_simple_fn(shape, || values.next().expect("drawn above"));
        let rows = field();
        (rows, field())
    }

    /// The displacement fields (rows, columns) of the image with `key`.
    ///
    /// # Errors
    /// As [`smooth_field`].
    pub fn fields(&self, key: ImageKey, shape: (usize, usize)) -> Result<(Array2<f64>, Array2<f64>), AugmentError> {
        self.fields_with(key, shape, &mut None)
    }

    fn fields_with(
        &self,
        key: ImageKey,
        shape: (usize, usize),
        plan: &mut Option<SmoothingPlan>,
    ) -> Result<(Array2<f64>, Array2<f64>), AugmentError> {
        let plan = SmoothingPlan::cached(plan, self.sigma, shape)?;
        let (rows, cols) = Self::raw_fields(key, shape);
        Ok((plan.smooth(rows.view(), self.alpha), plan.smooth(cols.view(), self.alpha)))
    }

    /// `elastic:ALPHA,SIGMA[,ORDER]`, `ORDER` 3 (cubic, the default) or 1 (linear).
    pub(crate) fn parse(settings: &str) -> Result<Arc<dyn Transform>, String> {
        let example = "elastic:34,4";
        let parts: Vec<&str> = settings.split(',').collect();
        let (alpha, sigma, order) = match parts.as_slice() {
            [alpha, sigma] => (*alpha, *sigma, "3"),
            [alpha, sigma, order] => (*alpha, *sigma, *order),
            _ => return Err(format!("expected ALPHA,SIGMA[,ORDER] (for example {example}), found {settings:?}")),
        };
        let number = |text: &str, name: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite() && *value > 0.0)
                .ok_or_else(|| format!("{name} is a number above 0 (for example {example}), found {text:?}"))
        };
        let order = match order.trim() {
            "3" => Order::Cubic,
            "1" => Order::Linear,
            other => return Err(format!("ORDER is 3 (cubic) or 1 (linear), found {other:?}")),
        };
        Ok(Arc::new(Elastic { alpha: number(alpha, "ALPHA")?, sigma: number(sigma, "SIGMA")?, order }))
    }
}

impl Transform for Elastic {
    fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        key: ImageKey,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        let (mut rows_at, mut cols_at) = self.fields_with(key, image.dim(), &mut scratch.smoothing)?;
        for ((row, col), displacement) in rows_at.indexed_iter_mut() {
            *displacement += row as f64;
            cols_at[[row, col]] += col as f64;
        }
        map_coordinates_into(image, rows_at.view(), cols_at.view(), self.order, &mut scratch.workspace, output)
    }

    fn spec(&self) -> String {
        match self.order {
            Order::Cubic => format!("elastic:{},{}", self.alpha, self.sigma),
            _ => format!("elastic:{},{},{}", self.alpha, self.sigma, self.order.n_taps() - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipeline;

    const KEY: ImageKey = ImageKey { seed: 7, epoch: 3, image_idx: 11 };

    fn digit() -> Array2<f32> {
        Array2::from_shape_fn(
            (28, 28),
            |(row, col)| if (8..20).contains(&row) && (12..16).contains(&col) { 1.0 } else { 0.0 },
        )
    }

    fn distort(spec: &str, key: ImageKey) -> Array2<f32> {
        let mut output = Array2::zeros((28, 28));
        Pipeline::parse(spec).unwrap().apply_into(digit().view(), key, &mut Scratch::new(), output.view_mut()).unwrap();
        output
    }

    #[test]
    fn the_same_image_key_gives_the_same_distortion_and_another_key_another() {
        let first = distort("elastic:34,4", KEY);
        assert_eq!(first, distort("elastic:34,4", KEY));
        assert_ne!(first, digit(), "it moves pixels");
        for other in [ImageKey { epoch: 4, ..KEY }, ImageKey { image_idx: 12, ..KEY }, ImageKey { seed: 8, ..KEY }] {
            assert_ne!(first, distort("elastic:34,4", other), "{other:?}");
        }
        // A tiny alpha barely moves anything: the sampling itself is faithful.
        let still = distort("elastic:0.000001,4", KEY);
        let gap = (&still - &digit()).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(gap < 1e-4, "{gap}");
    }

    #[test]
    fn it_composes_after_the_seeds_affine_without_changing_its_draws() {
        let affine = distort("seed", KEY);
        let both = distort("seed+elastic:34,4", KEY);
        let mut expected = Array2::zeros((28, 28));
        let elastic = Elastic { alpha: 34.0, sigma: 4.0, order: Order::Cubic };
        elastic.apply_into(affine.view(), KEY, &mut Scratch::new(), expected.view_mut()).unwrap();
        assert_eq!(both, expected);
        assert_eq!(Pipeline::parse("seed+elastic:34.0,4").unwrap().spec(), "seed+elastic:34,4");
        assert_eq!(Pipeline::parse("seed+elastic:34,4,3").unwrap().spec(), "seed+elastic:34,4");
        assert_eq!(Pipeline::parse("elastic:34,4,1").unwrap().spec(), "elastic:34,4,1");
        assert_ne!(distort("elastic:34,4,1", KEY), distort("elastic:34,4", KEY), "another interpolation");
    }

    #[test]
    fn the_smoothing_matrices_are_ndarray_ndimages_gaussian_filter() {
        let (raw, _) = Elastic::raw_fields(KEY, (28, 23));
        for sigma in [1.0, 4.0, 5.5] {
            let filtered = ndarray_ndimage::gaussian_filter(&raw, sigma, 0, BorderMode::Constant(0.0), TRUNCATE) * 3.0;
            let ours = smooth_field(raw.view(), sigma, 3.0).unwrap();
            let gap = (&ours - &filtered).mapv(f64::abs).fold(0.0f64, |a, &b| a.max(b));
            assert!(gap < 1e-12, "sigma {sigma}: {gap}");
        }
        // The plan kept in scratch space is rebuilt for another sigma or shape.
        let mut slot = None;
        assert_eq!(SmoothingPlan::cached(&mut slot, 4.0, (28, 28)).unwrap().shape, (28, 28));
        assert_eq!(SmoothingPlan::cached(&mut slot, 4.0, (20, 28)).unwrap().shape, (20, 28));
        assert_eq!(SmoothingPlan::cached(&mut slot, 2.0, (20, 28)).unwrap().sigma, 2.0);
    }

    #[test]
    fn the_fields_are_smooth_and_scaled_by_alpha() {
        let (raw_rows, _) = Elastic::raw_fields(KEY, (28, 28));
        assert!(raw_rows.iter().all(|value| (-1.0..=1.0).contains(value)));
        let (rows, _) = Elastic { alpha: 34.0, sigma: 4.0, order: Order::Cubic }.fields(KEY, (28, 28)).unwrap();
        let (half, _) = Elastic { alpha: 17.0, sigma: 4.0, order: Order::Cubic }.fields(KEY, (28, 28)).unwrap();
        assert!(rows.iter().zip(&half).all(|(a, b)| (a - 2.0 * b).abs() < 1e-12));
        // Neighbours differ far less than independent draws do.
        let step = |field: &Array2<f64>| {
            field.windows((1, 2)).into_iter().map(|pair| (pair[[0, 1]] - pair[[0, 0]]).abs()).sum::<f64>()
                / field.iter().map(|value| value.abs()).sum::<f64>()
        };
        assert!(step(&rows) < 0.3 * step(&raw_rows), "{} vs {}", step(&rows), step(&raw_rows));
    }

    #[test]
    fn bad_settings_and_a_gaussian_wider_than_the_image_are_errors_naming_them() {
        for (spec, expected) in [
            ("elastic", "expected ALPHA,SIGMA"),
            ("elastic:34", "expected ALPHA,SIGMA"),
            ("elastic:34,4,2", "ORDER is 3 (cubic) or 1 (linear)"),
            ("elastic:34,4,1,0", "expected ALPHA,SIGMA[,ORDER]"),
            ("elastic:-1,4", "ALPHA is a number above 0"),
            ("elastic:34,nan", "SIGMA is a number above 0"),
        ] {
            let message = Pipeline::parse(spec).unwrap_err().to_string();
            assert!(message.contains(&format!("{spec:?}")) && message.contains(expected), "{spec}: {message}");
        }
        let mut output = Array2::zeros((28, 28));
        let error = Pipeline::parse("elastic:34,8")
            .unwrap()
            .apply_into(digit().view(), KEY, &mut Scratch::new(), output.view_mut())
            .unwrap_err();
        assert!(error.to_string().contains("elastic sigma 8 reaches 32 pixels, more than the 28x28 image"), "{error}");
    }
}
