//! The seed's `augment_img` step: its random parameters, the composite
//! rotate-zoom-shift exactly as the seed computes it, and a fused variant.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};

use ndarray::{ArrayView2, ArrayViewMut2, s};
use rand::Rng;

use crate::kernels::{
    AffinePlan, Workspace, affine_transform_into, check_image, rotate_into, rotation_map, shift_into, zoom_window_into,
    zoomed_len,
};
use crate::transform::{ImageKey, Transform};
use crate::{AugmentError, Order};

/// One image's random transformation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Rotation in degrees (counter-clockwise as displayed, SciPy's convention).
    pub angle_degrees: f64,
    /// Zoom factor (the seed draws it in `[1.0, 1.1)`).
    pub zoom: f64,
    /// Shift in whole pixels, `(rows, cols)`: positive moves the content down and right.
    pub shift: (i32, i32),
}

/// Where the parameters are drawn from. The defaults are the seed's:
/// `randint(-15, 15)` degrees, `uniform(1.0, 1.1)` zoom, `randint(-3, 3, 2)` shift
/// (NumPy's upper bounds are exclusive, and so are these).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamRanges {
    /// Whole degrees, half-open.
    pub angle_degrees: Range<i32>,
    /// Zoom factor, half-open, at least 1 (the seed's crop arithmetic assumes it).
    pub zoom: Range<f64>,
    /// Whole pixels per axis, half-open.
    pub shift: Range<i32>,
}

impl Default for ParamRanges {
    fn default() -> Self {
        Self { angle_degrees: -15..15, zoom: 1.0..1.1, shift: -3..3 }
    }
}

impl ParamRanges {
    /// Checks that every range can be sampled and that zooms do not shrink.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |reason: String| Err(AugmentError::BadRanges { reason });
        if self.angle_degrees.is_empty() {
            return bad(format!("angle range {:?} is empty", self.angle_degrees));
        }
        if self.shift.is_empty() {
            return bad(format!("shift range {:?} is empty", self.shift));
        }
        let zoom = &self.zoom;
        if !(zoom.start.is_finite() && zoom.end.is_finite() && zoom.start >= 1.0 && zoom.start < zoom.end) {
            return bad(format!("zoom range {zoom:?} must be finite, start at 1 or more, and not be empty"));
        }
        Ok(())
    }

    /// Draws the parameters of image `image_idx` of epoch `epoch`: a pure
    /// function of `(seed, epoch, image_idx)` and the ranges.
    pub fn sample(&self, seed: u64, epoch: u64, image_idx: u64) -> AffineParams {
        let mut rng = ImageKey { seed, epoch, image_idx }.rng(0);
        let angle = rng.random_range(self.angle_degrees.clone());
        let zoom = rng.random_range(self.zoom.clone());
        let dy = rng.random_range(self.shift.clone());
        let dx = rng.random_range(self.shift.clone());
        AffineParams { angle_degrees: f64::from(angle), zoom, shift: (dy, dx) }
    }
}

/// The seed's crop before zooming and its trim after, along one axis of `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZoomPlan {
    /// First row (or column) of the crop: `(round(len * f) - len) // 2`.
    crop_start: usize,
    /// Length of the crop: NumPy clips `img[top:top + z]` to `len - top`.
    crop_len: usize,
    /// Length of the zoomed crop: `round(crop_len * f)`.
    zoomed_len: usize,
    /// First row kept of the zoomed crop: `(zoomed_len - len) // 2`.
    trim: usize,
}

impl ZoomPlan {
    fn new(len: usize, factor: f64) -> Self {
        let z = zoomed_len(len, factor);
        let crop_start = z.saturating_sub(len) / 2;
        let crop_len = len - crop_start.min(len);
        let zoomed = zoomed_len(crop_len, factor);
        Self { crop_start, crop_len, zoomed_len: zoomed, trim: zoomed.saturating_sub(len) / 2 }
    }
}

/// Scratch space for one image's augmentation; reuse it across images.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    pub(crate) workspace: Workspace,
    rotated: Vec<f32>,
    zoomed: Vec<f32>,
    /// The images between a pipeline's transforms.
    pub(crate) stages: [Vec<f32>; 2],
    /// The elastic distortion's smoothing, for the last sigma and shape it saw.
    pub(crate) smoothing: Option<crate::transform::SmoothingPlan>,
}

impl Scratch {
    /// Empty scratch space; it grows on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Rotation plans shared by every thread, keyed by angle bits and image shape.
type PlanCache = RwLock<HashMap<(u64, usize, usize), Arc<AffinePlan>>>;
static ROTATION_PLANS: OnceLock<PlanCache> = OnceLock::new();
/// The seed draws 30 whole-degree angles; a few hundred plans of 28x28 take
/// about 60 KB each. Angles beyond the bound are rotated without a plan.
const MAX_CACHED_PLANS: usize = 256;

/// [`rotate_into`], through a shared precomputed plan for whole-degree cubic
/// rotations (identical results, less arithmetic per image).
fn rotate_planned(
    image: ArrayView2<'_, f32>,
    degrees: f64,
    order: Order,
    workspace: &mut Workspace,
    output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    if order != Order::Cubic || degrees.fract() != 0.0 {
        return rotate_into(image, degrees, order, workspace, output);
    }
    let key = (degrees.to_bits(), image.nrows(), image.ncols());
    let cache = ROTATION_PLANS.get_or_init(PlanCache::default);
    // A poisoned lock only means another thread panicked mid-insert; plans are never half-written.
    let cached = cache.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key).cloned();
    let plan = match cached {
        Some(plan) => plan,
        None => {
            let mut plans = cache.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            if plans.len() >= MAX_CACHED_PLANS {
                // A plan used once costs more than rotating directly.
                drop(plans);
                return rotate_into(image, degrees, order, workspace, output);
            }
            Arc::clone(plans.entry(key).or_insert_with(|| Arc::new(AffinePlan::rotation(degrees, image.dim()))))
        }
    };
    plan.apply_into(image, workspace, output)
}

/// The seed's `augment_img` for one image, step by step as the seed does it:
/// rotate (`reshape=False`), crop `img[top:top+z, left:left+z]` with NumPy's
/// clipping (so `img[1:, 1:]` when `top == 1`), zoom, centre-trim, shift;
/// each step rounds to `f32` as SciPy does for `float32` input.
pub fn augment_original_into(
    image: ArrayView2<'_, f32>,
    params: &AffineParams,
    order: Order,
    scratch: &mut Scratch,
    output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    let (rows, cols) = image.dim();
    let Scratch { workspace, rotated, zoomed, .. } = scratch;
    rotated.resize(rows * cols, 0.0);
    zoomed.resize(rows * cols, 0.0);
    let mut rotated_view = ArrayViewMut2::from_shape((rows, cols), rotated.as_mut_slice()).expect("sized above");
    rotate_planned(image, params.angle_degrees, order, workspace, rotated_view.view_mut())?;

    let (row_plan, col_plan) = (ZoomPlan::new(rows, params.zoom), ZoomPlan::new(cols, params.zoom));
    if row_plan.zoomed_len < rows || col_plan.zoomed_len < cols {
        return Err(AugmentError::ZoomTooSmall {
            factor: params.zoom,
            rows,
            cols,
            found: (row_plan.zoomed_len, col_plan.zoomed_len),
        });
    }
    let crop = rotated_view.slice(s![row_plan.crop_start.., col_plan.crop_start..]);
    let mut zoomed_view = ArrayViewMut2::from_shape((rows, cols), zoomed.as_mut_slice()).expect("sized above");
    zoom_window_into(crop, params.zoom, order, (row_plan.trim, col_plan.trim), workspace, zoomed_view.view_mut())?;

    let (dy, dx) = params.shift;
    shift_into(zoomed_view.view(), (f64::from(dy), f64::from(dx)), order, workspace, output)
}

/// The affine map (output coordinates to input coordinates) that the seed's
/// three steps compose to, ignoring the zeros each intermediate step
/// introduces at its borders.
pub fn fused_map(params: &AffineParams, (rows, cols): (usize, usize)) -> ([[f64; 2]; 2], [f64; 2]) {
    let (rotation, rotation_offset) = rotation_map(params.angle_degrees, (rows, cols));
    // Per axis: output p -> zoomed-crop index p - d + trim -> crop coordinate (..) * zf -> rotated index + start.
    let axis = |len: usize, shift: i32| {
        let plan = ZoomPlan::new(len, params.zoom);
        let zf = if params.zoom == 1.0 || plan.zoomed_len <= 1 {
            1.0
        } else {
            (plan.crop_len as f64 - 1.0) / (plan.zoomed_len as f64 - 1.0)
        };
        (zf, zf * (plan.trim as f64 - f64::from(shift)) + plan.crop_start as f64)
    };
    let (row_scale, row_offset) = axis(rows, params.shift.0);
    let (col_scale, col_offset) = axis(cols, params.shift.1);
    // Rotated index q = diag(scale) p + offset; input x = R q + rotation_offset.
    let matrix = [
        [rotation[0][0] * row_scale, rotation[0][1] * col_scale],
        [rotation[1][0] * row_scale, rotation[1][1] * col_scale],
    ];
    let offset = [
        rotation[0][0] * row_offset + rotation[0][1] * col_offset + rotation_offset[0],
        rotation[1][0] * row_offset + rotation[1][1] * col_offset + rotation_offset[1],
    ];
    (matrix, offset)
}

/// The same transformation as [`augment_original_into`] in one interpolation
/// pass: less blur (one spline fit instead of three), at about the same speed
/// (`docs/PERFORMANCE.md`).
pub fn augment_fused_into(
    image: ArrayView2<'_, f32>,
    params: &AffineParams,
    order: Order,
    scratch: &mut Scratch,
    output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    if output.dim() != image.dim() {
        return Err(AugmentError::OutputShape { expected: image.dim(), found: output.dim() });
    }
    let (matrix, offset) = fused_map(params, image.dim());
    affine_transform_into(image, matrix, offset, order, &mut scratch.workspace, output)
}

/// The seed's random rotate, crop-zoom and shift as a [`Transform`]: step
/// by step and SciPy-exact (`seed`), or composed into one interpolation
/// pass (`fused`). Its parameters are [`ParamRanges::sample`] of the image's
/// key, so a pipeline that starts with it draws what the seed's step does.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginalAffine {
    /// Where the parameters are drawn from.
    pub ranges: ParamRanges,
    /// Interpolation order (the seed's is cubic).
    pub order: Order,
    /// One interpolation pass instead of the seed's three.
    pub fused: bool,
}

impl OriginalAffine {
    /// The seed's step, as the seed computes it.
    pub fn stepwise() -> Self {
        Self { ranges: ParamRanges::default(), order: Order::Cubic, fused: false }
    }

    /// The same random transformation in one pass.
    pub fn fused() -> Self {
        Self { fused: true, ..Self::stepwise() }
    }

    pub(crate) fn parse_stepwise(settings: &str) -> Result<Arc<dyn Transform>, String> {
        no_settings("seed", settings).map(|()| Arc::new(Self::stepwise()) as Arc<dyn Transform>)
    }

    pub(crate) fn parse_fused(settings: &str) -> Result<Arc<dyn Transform>, String> {
        no_settings("fused", settings).map(|()| Arc::new(Self::fused()) as Arc<dyn Transform>)
    }
}

fn no_settings(name: &str, settings: &str) -> Result<(), String> {
    if settings.is_empty() { Ok(()) } else { Err(format!("`{name}` takes no settings, found {settings:?}")) }
}

impl Transform for OriginalAffine {
    fn validate(&self) -> Result<(), AugmentError> {
        self.ranges.validate()
    }

    fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        key: ImageKey,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        let params = self.ranges.sample(key.seed, key.epoch, key.image_idx);
        if self.fused {
            augment_fused_into(image, &params, self.order, scratch, output)
        } else {
            augment_original_into(image, &params, self.order, scratch, output)
        }
    }

    fn spec(&self) -> String {
        if self.fused { "fused" } else { "seed" }.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_plan_follows_the_seed_arithmetic_including_the_crop_quirk() {
        // round(28 * 1.05) = 29 (29.4): no crop; round(28 * 1.06) = 30 (29.68): crop from 1, 27 long.
        assert_eq!(ZoomPlan::new(28, 1.05), ZoomPlan { crop_start: 0, crop_len: 28, zoomed_len: 29, trim: 0 });
        assert_eq!(ZoomPlan::new(28, 1.06), ZoomPlan { crop_start: 1, crop_len: 27, zoomed_len: 29, trim: 0 });
        assert_eq!(ZoomPlan::new(28, 1.0999), ZoomPlan { crop_start: 1, crop_len: 27, zoomed_len: 30, trim: 1 });
        assert_eq!(ZoomPlan::new(28, 1.0), ZoomPlan { crop_start: 0, crop_len: 28, zoomed_len: 28, trim: 0 });
    }

    #[test]
    fn sampling_is_a_pure_function_of_seed_epoch_and_index_within_the_ranges() {
        let ranges = ParamRanges::default();
        assert_eq!(ranges.sample(7, 3, 11), ranges.sample(7, 3, 11));
        assert_ne!(ranges.sample(7, 3, 11), ranges.sample(7, 3, 12));
        assert_ne!(ranges.sample(7, 3, 11), ranges.sample(7, 4, 11));
        assert_ne!(ranges.sample(7, 3, 11), ranges.sample(8, 3, 11));
        let (mut angles, mut shifts) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for image_idx in 0..5_000 {
            let params = ranges.sample(1, 0, image_idx);
            assert!((1.0..1.1).contains(&params.zoom));
            angles.insert(params.angle_degrees as i32);
            shifts.insert(params.shift.0);
            shifts.insert(params.shift.1);
        }
        assert_eq!(angles, (-15..15).collect());
        assert_eq!(shifts, (-3..3).collect());
    }

    #[test]
    fn ranges_are_validated() {
        assert!(ParamRanges::default().validate().is_ok());
        let shrinking = ParamRanges { zoom: 0.9..1.1, ..ParamRanges::default() };
        assert!(shrinking.validate().unwrap_err().to_string().contains("start at 1 or more"));
        let empty = ParamRanges { angle_degrees: 3..3, ..ParamRanges::default() };
        assert!(empty.validate().unwrap_err().to_string().contains("angle range 3..3 is empty"));
    }
}
