//! The three `scipy.ndimage` transformations the seed uses, on 2-D `f32`
//! images, with `mode='constant'`, `cval=0` and spline prefiltering.
//!
//! Each comes as an allocating function (`rotate`, `zoom`, `shift`,
//! `affine_transform`) and as a `*_into` function that writes into a given
//! output and takes its scratch space from a reusable [`Workspace`].
//! Internally everything is `f64`, like SciPy; each result is rounded to
//! `f32`, as SciPy does when the input is `float32`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::spline::{Taps, prefilter_2d};
use crate::{AugmentError, Order};

/// Scratch buffers reused across calls, so the hot loop allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    /// Spline coefficients of the current input, row-major.
    pub(crate) coefficients: Vec<f64>,
    /// One line, for the column pass of the prefilter.
    line: Vec<f64>,
    /// Taps of every output row and column (separable kernels).
    row_taps: Vec<Option<Taps>>,
    col_taps: Vec<Option<Taps>>,
    /// Intermediate of the separable kernels: rows interpolated, columns not yet.
    partial: Vec<f64>,
}

impl Workspace {
    /// An empty workspace; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `image` as spline coefficients (prefiltered for order 3, as is for 0 and 1).
    fn load(&mut self, image: &ArrayView2<'_, f32>, order: Order) {
        let (rows, cols) = image.dim();
        self.coefficients.clear();
        self.coefficients.extend(image.iter().map(|&pixel| f64::from(pixel)));
        if order == Order::Cubic {
            prefilter_2d(&mut self.coefficients, rows, cols, &mut self.line);
        }
    }
}

pub(crate) fn check_image(image: &ArrayView2<'_, f32>) -> Result<(), AugmentError> {
    let (rows, cols) = image.dim();
    if rows == 0 || cols == 0 {
        return Err(AugmentError::EmptyImage { rows, cols });
    }
    Ok(())
}

fn check_output(expected: (usize, usize), found: (usize, usize)) -> Result<(), AugmentError> {
    if expected != found {
        return Err(AugmentError::OutputShape { expected, found });
    }
    Ok(())
}

/// Interpolates the loaded coefficients (`in_rows x in_cols`) at the points
/// `(row_coordinate(r), col_coordinate(c))` of a separable map, for output
/// rows `row_range` and all output columns, writing `output`.
fn separable_into(
    workspace: &mut Workspace,
    (in_rows, in_cols): (usize, usize),
    order: Order,
    row_coordinates: impl Iterator<Item = f64>,
    col_coordinates: impl Iterator<Item = f64>,
    output: &mut ArrayViewMut2<'_, f32>,
) {
    let n_taps = order.n_taps();
    workspace.row_taps.clear();
    workspace.row_taps.extend(row_coordinates.map(|coordinate| Taps::at(coordinate, in_rows, order)));
    workspace.col_taps.clear();
    workspace.col_taps.extend(col_coordinates.map(|coordinate| Taps::at(coordinate, in_cols, order)));
    let out_cols = workspace.col_taps.len();
    // Pass 1: for each output row, interpolate along the input rows (one value per input column).
    workspace.partial.clear();
    workspace.partial.resize(workspace.row_taps.len() * in_cols, 0.0);
    for (out_row, taps) in workspace.row_taps.iter().enumerate() {
        let Some(taps) = taps else { continue };
        let partial_row = &mut workspace.partial[out_row * in_cols..(out_row + 1) * in_cols];
        for tap in 0..n_taps {
            let weight = taps.weights[tap];
            let source = &workspace.coefficients[taps.indices[tap] * in_cols..(taps.indices[tap] + 1) * in_cols];
            for (value, &coefficient) in partial_row.iter_mut().zip(source) {
                *value += weight * coefficient;
            }
        }
    }
    // Pass 2: along the columns.
    for (out_row, row_taps) in workspace.row_taps.iter().enumerate() {
        let partial_row = &workspace.partial[out_row * in_cols..(out_row + 1) * in_cols];
        for out_col in 0..out_cols {
            let value = match (row_taps, &workspace.col_taps[out_col]) {
                (Some(_), Some(taps)) => {
                    (0..n_taps).map(|tap| taps.weights[tap] * partial_row[taps.indices[tap]]).sum::<f64>()
                }
                _ => 0.0,
            };
            output[[out_row, out_col]] = value as f32;
        }
    }
}

/// `scipy.ndimage.shift(image, (dy, dx), order=order)`: output pixel
/// `(r, c)` takes the input at `(r - dy, c - dx)`; zero where that is outside.
pub fn shift(image: ArrayView2<'_, f32>, (dy, dx): (f64, f64), order: Order) -> Result<Array2<f32>, AugmentError> {
    let mut output = Array2::zeros(image.dim());
    shift_into(image, (dy, dx), order, &mut Workspace::new(), output.view_mut())?;
    Ok(output)
}

/// [`shift`] into a given output of the input's shape.
pub fn shift_into(
    image: ArrayView2<'_, f32>,
    (dy, dx): (f64, f64),
    order: Order,
    workspace: &mut Workspace,
    mut output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    check_output(image.dim(), output.dim())?;
    let (rows, cols) = image.dim();
    if dy.fract() == 0.0 && dx.fract() == 0.0 && dy.abs() < 1e9 && dx.abs() < 1e9 {
        // Whole-pixel shifts interpolate at the knots, which gives back the pixels
        // themselves (to within 1e-7 in SciPy's f64 arithmetic): copy them.
        shift_whole_pixels(&image, (dy as isize, dx as isize), &mut output);
        return Ok(());
    }
    workspace.load(&image, order);
    // SciPy's zoom_shift computes `kk + (-shift)` per axis.
    let row_coordinates = (0..rows).map(|out_row| out_row as f64 + -dy);
    let col_coordinates = (0..cols).map(|out_col| out_col as f64 + -dx);
    separable_into(workspace, (rows, cols), order, row_coordinates, col_coordinates, &mut output);
    Ok(())
}

fn shift_whole_pixels(image: &ArrayView2<'_, f32>, (dy, dx): (isize, isize), output: &mut ArrayViewMut2<'_, f32>) {
    let (rows, cols) = image.dim();
    for out_row in 0..rows {
        let in_row = out_row as isize - dy;
        for out_col in 0..cols {
            let in_col = out_col as isize - dx;
            let inside = (0..rows as isize).contains(&in_row) && (0..cols as isize).contains(&in_col);
            output[[out_row, out_col]] = if inside { image[[in_row as usize, in_col as usize]] } else { 0.0 };
        }
    }
}

/// The output size of `scipy.ndimage.zoom` along one axis: `round(len * factor)`,
/// Python's round (halves to even).
pub fn zoomed_len(len: usize, factor: f64) -> usize {
    (len as f64 * factor).round_ties_even().max(0.0) as usize
}

/// `scipy.ndimage.zoom(image, factor, order=order)` (same factor on both axes,
/// `grid_mode=False`): the output has `round(len * factor)` samples per axis,
/// and output `k` samples input `k * (len_in - 1) / (len_out - 1)`.
pub fn zoom(image: ArrayView2<'_, f32>, factor: f64, order: Order) -> Result<Array2<f32>, AugmentError> {
    let (rows, cols) = image.dim();
    let out_shape = (zoomed_len(rows, factor), zoomed_len(cols, factor));
    let mut output = Array2::zeros(out_shape);
    zoom_window_into(image, factor, order, (0, 0), &mut Workspace::new(), output.view_mut())?;
    Ok(output)
}

/// A window of [`zoom`]'s output: output pixel `(r, c)` is pixel
/// `(top + r, left + c)` of the full zoomed image. Computing only the window
/// gives the same values as zooming everything and cropping.
pub fn zoom_window_into(
    image: ArrayView2<'_, f32>,
    factor: f64,
    order: Order,
    (top, left): (usize, usize),
    workspace: &mut Workspace,
    mut output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    if !(factor.is_finite() && factor > 0.0) {
        return Err(AugmentError::BadZoom { factor });
    }
    let (rows, cols) = image.dim();
    let (full_rows, full_cols) = (zoomed_len(rows, factor), zoomed_len(cols, factor));
    let (out_rows, out_cols) = output.dim();
    if top + out_rows > full_rows || left + out_cols > full_cols {
        return Err(AugmentError::ZoomWindow { top, left, window: (out_rows, out_cols), full: (full_rows, full_cols) });
    }
    if factor == 1.0 {
        // SciPy returns the input unchanged for a zoom of exactly 1 (gh-20999).
        output.assign(&image.slice(ndarray::s![top..top + out_rows, left..left + out_cols]));
        return Ok(());
    }
    workspace.load(&image, order);
    // SciPy: zoom = (in - 1) / (out - 1) per axis (1 when out is 1), coordinate = k * zoom.
    let axis_zoom = |len_in: usize, len_out: usize| {
        if len_out > 1 { (len_in as f64 - 1.0) / (len_out as f64 - 1.0) } else { 1.0 }
    };
    let (row_zoom, col_zoom) = (axis_zoom(rows, full_rows), axis_zoom(cols, full_cols));
    let row_coordinates = (top..top + out_rows).map(|out_row| out_row as f64 * row_zoom);
    let col_coordinates = (left..left + out_cols).map(|out_col| out_col as f64 * col_zoom);
    separable_into(workspace, (rows, cols), order, row_coordinates, col_coordinates, &mut output);
    Ok(())
}

/// `scipy.ndimage.affine_transform(image, matrix, offset, output_shape)`:
/// output pixel `o` takes the input at `matrix @ o + offset`.
pub fn affine_transform_into(
    image: ArrayView2<'_, f32>,
    matrix: [[f64; 2]; 2],
    offset: [f64; 2],
    order: Order,
    workspace: &mut Workspace,
    mut output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    let (rows, cols) = image.dim();
    workspace.load(&image, order);
    let coefficients = &workspace.coefficients;
    let (out_rows, out_cols) = output.dim();
    for out_row in 0..out_rows {
        let r = out_row as f64;
        for out_col in 0..out_cols {
            let c = out_col as f64;
            // The same operation order as SciPy's loop: sum over output axes, then the offset.
            let in_row = r * matrix[0][0] + c * matrix[0][1] + offset[0];
            let in_col = r * matrix[1][0] + c * matrix[1][1] + offset[1];
            output[[out_row, out_col]] = sample(coefficients, (rows, cols), order, in_row, in_col) as f32;
        }
    }
    Ok(())
}

/// The spline through `coefficients` (`rows x cols`) at `(y, x)`, or 0 outside the image.
#[inline]
fn sample(coefficients: &[f64], (rows, cols): (usize, usize), order: Order, y: f64, x: f64) -> f64 {
    if order == Order::Cubic
        && let Some(value) = sample_cubic_interior(coefficients, (rows, cols), y, x)
    {
        return value;
    }
    let (Some(row_taps), Some(col_taps)) = (Taps::at(y, rows, order), Taps::at(x, cols, order)) else {
        return 0.0;
    };
    let n_taps = order.n_taps();
    let mut sum = 0.0;
    for row_tap in 0..n_taps {
        let source = &coefficients[row_taps.indices[row_tap] * cols..];
        let mut row_sum = 0.0;
        for col_tap in 0..n_taps {
            row_sum += col_taps.weights[col_tap] * source[col_taps.indices[col_tap]];
        }
        sum += row_taps.weights[row_tap] * row_sum;
    }
    sum
}

/// The fast path of [`sample`] for cubic splines whose 4x4 taps all lie inside
/// the image (no mirror folding); `None` elsewhere.
#[inline]
fn sample_cubic_interior(coefficients: &[f64], (rows, cols): (usize, usize), y: f64, x: f64) -> Option<f64> {
    let (floor_y, floor_x) = (y.floor(), x.floor());
    // Written so that NaN fails the test and takes the general path.
    if !(floor_y >= 1.0 && floor_y + 2.0 < rows as f64 && floor_x >= 1.0 && floor_x + 2.0 < cols as f64) {
        return None;
    }
    let (row_weights, col_weights) = (Taps::cubic_weights(y - floor_y), Taps::cubic_weights(x - floor_x));
    let base = (floor_y as usize - 1) * cols + floor_x as usize - 1;
    let mut sum = 0.0;
    for (tap, row_weight) in row_weights.iter().enumerate() {
        let start = base + tap * cols;
        let row: &[f64; 4] = coefficients[start..start + 4].try_into().ok()?;
        sum += row_weight
            * (col_weights[0] * row[0] + col_weights[1] * row[1] + col_weights[2] * row[2] + col_weights[3] * row[3]);
    }
    Some(sum)
}

/// The matrix and offset `scipy.ndimage.rotate(image, degrees, reshape=False)`
/// passes to `affine_transform`: rotation about the image centre, with
/// SciPy's sign convention and its degree-exact sine and cosine.
pub fn rotation_map(degrees: f64, (rows, cols): (usize, usize)) -> ([[f64; 2]; 2], [f64; 2]) {
    let (sin, cos) = sin_cos_degrees(degrees);
    let matrix = [[cos, sin], [-sin, cos]];
    let center = [(rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0];
    let out_center =
        [matrix[0][0] * center[0] + matrix[0][1] * center[1], matrix[1][0] * center[0] + matrix[1][1] * center[1]];
    (matrix, [center[0] - out_center[0], center[1] - out_center[1]])
}

/// Sine and cosine of an angle in degrees, exact at multiples of 90 like
/// `scipy.special.sindg` / `cosdg`.
fn sin_cos_degrees(degrees: f64) -> (f64, f64) {
    let quarter_turns = degrees / 90.0;
    if quarter_turns.fract() == 0.0 && quarter_turns.abs() < 1e15 {
        let table = [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)];
        return table[(quarter_turns as i64).rem_euclid(4) as usize];
    }
    degrees.to_radians().sin_cos()
}

/// `scipy.ndimage.rotate(image, degrees, reshape=False, order=order)`.
pub fn rotate(image: ArrayView2<'_, f32>, degrees: f64, order: Order) -> Result<Array2<f32>, AugmentError> {
    let mut output = Array2::zeros(image.dim());
    rotate_into(image, degrees, order, &mut Workspace::new(), output.view_mut())?;
    Ok(output)
}

/// [`rotate`] into a given output of the input's shape.
pub fn rotate_into(
    image: ArrayView2<'_, f32>,
    degrees: f64,
    order: Order,
    workspace: &mut Workspace,
    output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_output(image.dim(), output.dim())?;
    let (matrix, offset) = rotation_map(degrees, image.dim());
    affine_transform_into(image, matrix, offset, order, workspace, output)
}
