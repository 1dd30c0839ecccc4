//! The three `scipy.ndimage` transformations the seed uses, on 2-D `f32`
//! images, with `mode='constant'`, `cval=0` and spline prefiltering.
//!
//! Each comes as an allocating function (`rotate`, `zoom`, `shift`,
//! `affine_transform`) and as a `*_into` function that writes into a given
//! output and takes its scratch space from a reusable [`Workspace`].
//! Internally everything is `f64`, like SciPy; each result is rounded to
//! `f32`, as SciPy does when the input is `float32`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::spline::{Scratch2d, Taps, mirror_index, prefilter_2d};

/// Cubic taps reach one sample before the floor of a coordinate and two after.
const PAD_BEFORE: usize = 1;
const PAD_AFTER: usize = 2;
use crate::{AugmentError, Order};

/// Scratch buffers reused across calls, so the hot loop allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    /// Spline coefficients of the current input, row-major.
    pub(crate) coefficients: Vec<f64>,
    /// Scratch space of the prefilter.
    prefilter: Scratch2d,
    /// Taps of every output row and column (separable kernels).
    row_taps: Vec<Option<Taps>>,
    col_taps: Vec<Option<Taps>>,
    /// Intermediate of the separable kernels: rows interpolated, columns not yet.
    partial: Vec<f64>,
    /// The coefficients with a mirrored border (1 before, 2 after each axis),
    /// so that every cubic 4x4 block of an in-range point is a plain slice.
    padded: Vec<f64>,
    /// Flat output of the affine loop, copied into the caller's view.
    output_buffer: Vec<f32>,
}

impl Workspace {
    /// An empty workspace; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills `padded` from the loaded coefficients (`rows x cols`): padded
    /// `(i + 1, j + 1)` is coefficient `(i, j)`, and the border holds the
    /// mirrored coefficients SciPy reads beyond the edges.
    fn pad(&mut self, rows: usize, cols: usize) {
        let padded_rows = rows + PAD_BEFORE + PAD_AFTER;
        self.padded.clear();
        self.padded.reserve(padded_rows * (cols + PAD_BEFORE + PAD_AFTER));
        let border = |col: isize| mirror_index(col, cols as isize);
        let (before, after_1, after_2) = (border(-1), border(cols as isize), border(cols as isize + 1));
        for padded_row in 0..padded_rows {
            let row = mirror_index(padded_row as isize - PAD_BEFORE as isize, rows as isize);
            let source = &self.coefficients[row * cols..(row + 1) * cols];
            self.padded.push(source[before]);
            self.padded.extend_from_slice(source);
            self.padded.push(source[after_1]);
            self.padded.push(source[after_2]);
        }
    }

    /// Loads `image` as spline coefficients (prefiltered for order 3, as is for 0 and 1).
    fn load(&mut self, image: &ArrayView2<'_, f32>, order: Order) {
        let (rows, cols) = image.dim();
        self.coefficients.clear();
        for row in image.rows() {
            match row.as_slice() {
                Some(pixels) => self.coefficients.extend(pixels.iter().map(|&pixel| f64::from(pixel))),
                None => self.coefficients.extend(row.iter().map(|&pixel| f64::from(pixel))),
            }
        }
        if order == Order::Cubic {
            prefilter_2d(&mut self.coefficients, rows, cols, &mut self.prefilter);
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
    workspace.row_taps.clear();
    workspace.row_taps.extend(row_coordinates.map(|coordinate| Taps::at(coordinate, in_rows, order)));
    workspace.col_taps.clear();
    workspace.col_taps.extend(col_coordinates.map(|coordinate| Taps::at(coordinate, in_cols, order)));
    let Workspace { coefficients, row_taps, col_taps, partial, .. } = workspace;
    partial.clear();
    partial.resize(row_taps.len() * in_cols, 0.0);
    let out_cols = output.ncols();
    match output.as_slice_mut() {
        Some(flat) => separable_passes(coefficients, in_cols, order.n_taps(), row_taps, col_taps, partial, flat),
        None => {
            let mut flat = vec![0.0f32; row_taps.len() * out_cols];
            separable_passes(coefficients, in_cols, order.n_taps(), row_taps, col_taps, partial, &mut flat);
            output.assign(&ArrayView2::from_shape((row_taps.len(), out_cols), &flat).expect("sized above"));
        }
    }
}

/// Both passes of a separable interpolation into a flat output, compiled for
/// AVX2 too (same operations, same results).
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn separable_passes(
    coefficients: &[f64],
    in_cols: usize,
    n_taps: usize,
    row_taps: &[Option<Taps>],
    col_taps: &[Option<Taps>],
    partial: &mut [f64],
    output: &mut [f32],
) {
    // Pass 1: for each output row, interpolate along the input rows (one value per input column).
    for (taps, partial_row) in row_taps.iter().zip(partial.chunks_exact_mut(in_cols)) {
        let Some(taps) = taps else { continue };
        for tap in 0..n_taps {
            let weight = taps.weights[tap];
            let source = &coefficients[taps.indices[tap] * in_cols..(taps.indices[tap] + 1) * in_cols];
            for (value, &coefficient) in partial_row.iter_mut().zip(source) {
                *value += weight * coefficient;
            }
        }
    }
    // Pass 2: along the columns.
    let out_cols = col_taps.len();
    for ((taps, partial_row), output_row) in
        row_taps.iter().zip(partial.chunks_exact(in_cols)).zip(output.chunks_exact_mut(out_cols))
    {
        if taps.is_none() {
            output_row.fill(0.0);
            continue;
        }
        for (pixel, col_taps) in output_row.iter_mut().zip(col_taps) {
            *pixel = match col_taps {
                None => 0.0,
                Some(taps) => dot_taps(taps, n_taps, partial_row) as f32,
            };
        }
    }
}

/// The weighted sum of a line's samples at the given taps.
#[inline(always)]
fn dot_taps(taps: &Taps, n_taps: usize, line: &[f64]) -> f64 {
    let (indices, weights) = (&taps.indices, &taps.weights);
    match n_taps {
        4 => {
            weights[0] * line[indices[0]]
                + weights[1] * line[indices[1]]
                + weights[2] * line[indices[2]]
                + weights[3] * line[indices[3]]
        }
        2 => weights[0] * line[indices[0]] + weights[1] * line[indices[1]],
        _ => weights[0] * line[indices[0]],
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
    // Output columns whose source column lies inside the image.
    let first_col = dx.clamp(0, cols as isize) as usize;
    let last_col = (cols as isize + dx).clamp(0, cols as isize) as usize;
    if let (Some(source), Some(target)) = (image.as_slice(), output.as_slice_mut()) {
        // The common case, contiguous images: plain slice copies.
        for (out_row, target_row) in target.chunks_exact_mut(cols).enumerate() {
            let in_row = out_row as isize - dy;
            target_row.fill(0.0);
            if (0..rows as isize).contains(&in_row) && first_col < last_col {
                let source_row = &source[in_row as usize * cols..(in_row as usize + 1) * cols];
                let source_start = (first_col as isize - dx) as usize;
                target_row[first_col..last_col]
                    .copy_from_slice(&source_row[source_start..source_start + (last_col - first_col)]);
            }
        }
        return;
    }
    for (out_row, mut output_row) in output.rows_mut().into_iter().enumerate() {
        let in_row = out_row as isize - dy;
        output_row.fill(0.0);
        if !(0..rows as isize).contains(&in_row) || first_col >= last_col {
            continue;
        }
        let source = image.row(in_row as usize);
        let source_cols = (first_col as isize - dx) as usize..(last_col as isize - dx) as usize;
        output_row.slice_mut(ndarray::s![first_col..last_col]).assign(&source.slice(ndarray::s![source_cols]));
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
    let out_shape = output.dim();
    if order == Order::Cubic {
        workspace.pad(rows, cols);
        let Workspace { padded, output_buffer, .. } = workspace;
        output_buffer.clear();
        output_buffer.resize(out_shape.0 * out_shape.1, 0.0);
        affine_cubic(padded, (rows, cols), matrix, offset, output_buffer, out_shape.1);
        let computed = ArrayView2::from_shape(out_shape, output_buffer.as_slice()).expect("sized above");
        output.assign(&computed);
        return Ok(());
    }
    let (last_row, last_col) = (rows as f64 - 1.0, cols as f64 - 1.0);
    for out_row in 0..out_shape.0 {
        let r = out_row as f64;
        for out_col in 0..out_shape.1 {
            let c = out_col as f64;
            let (y, x) = map_point(matrix, offset, r, c);
            let inside = y >= 0.0 && y <= last_row && x >= 0.0 && x <= last_col;
            let value = if inside { sample_general(&workspace.coefficients, (rows, cols), order, y, x) } else { 0.0 };
            output[[out_row, out_col]] = value as f32;
        }
    }
    Ok(())
}

/// `scipy.ndimage.map_coordinates(image, [rows, cols], order, mode='constant', cval=0)`:
/// output pixel `(r, c)` takes the input at `(rows[r, c], cols[r, c])`,
/// 0 where that point is outside the image (or not a number).
///
/// ```
/// use augment::{Order, Workspace, kernels::map_coordinates_into};
/// use ndarray::Array2;
///
/// let image = Array2::from_shape_fn((5, 5), |(r, c)| (r * 5 + c) as f32);
/// // Every pixel samples the one to its right: a shift left by one.
/// let rows = Array2::from_shape_fn((5, 5), |(r, _)| r as f64);
/// let cols = Array2::from_shape_fn((5, 5), |(_, c)| c as f64 + 1.0);
/// let mut output = Array2::zeros((5, 5));
/// map_coordinates_into(image.view(), rows.view(), cols.view(), Order::Linear, &mut Workspace::new(), output.view_mut())?;
/// assert_eq!((output[[2, 0]], output[[2, 4]]), (11.0, 0.0));
/// # Ok::<(), augment::AugmentError>(())
/// ```
///
/// # Errors
/// An empty image, or coordinates and output of different shapes.
pub fn map_coordinates_into(
    image: ArrayView2<'_, f32>,
    rows_at: ArrayView2<'_, f64>,
    cols_at: ArrayView2<'_, f64>,
    order: Order,
    workspace: &mut Workspace,
    mut output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    check_image(&image)?;
    for shape in [rows_at.dim(), cols_at.dim()] {
        if shape != output.dim() {
            return Err(AugmentError::OutputShape { expected: shape, found: output.dim() });
        }
    }
    let shape = image.dim();
    workspace.load(&image, order);
    if order == Order::Cubic {
        // The padded coefficients make every 4x4 block a plain slice, as in the affine loop.
        workspace.pad(shape.0, shape.1);
        let Workspace { padded, output_buffer, .. } = workspace;
        output_buffer.clear();
        output_buffer.resize(output.len(), 0.0);
        let (rows_at, cols_at) = (rows_at.as_standard_layout(), cols_at.as_standard_layout());
        let (Some(ys), Some(xs)) = (rows_at.as_slice(), cols_at.as_slice()) else {
            unreachable!("standard layout is contiguous")
        };
        map_cubic(padded, shape, ys, xs, output_buffer);
        let computed = ArrayView2::from_shape(output.dim(), output_buffer.as_slice()).expect("sized above");
        output.assign(&computed);
        return Ok(());
    }
    ndarray::Zip::from(&mut output).and(&rows_at).and(&cols_at).for_each(|pixel, &y, &x| {
        *pixel = sample_general(&workspace.coefficients, shape, order, y, x) as f32;
    });
    Ok(())
}

/// The cubic spline of `padded` coefficients (an image of `rows x cols`,
/// padded as [`Workspace::pad`] does) at the points `(ys[i], xs[i])`, into
/// `output[i]`; 0 outside `[0, len - 1]` on either axis (or NaN), as SciPy's
/// `mode='constant'`. [`LANES`] points at a time, as the affine loop, and
/// compiled for AVX2 too.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn map_cubic(padded: &[f64], (rows, cols): (usize, usize), ys: &[f64], xs: &[f64], output: &mut [f32]) {
    let padded_cols = cols + PAD_BEFORE + PAD_AFTER;
    let (last_row, last_col) = (rows as f64 - 1.0, cols as f64 - 1.0);
    for ((output_chunk, y_chunk), x_chunk) in output.chunks_mut(LANES).zip(ys.chunks(LANES)).zip(xs.chunks(LANES)) {
        let (mut y, mut x, mut inside) = ([0.0f64; LANES], [0.0f64; LANES], [false; LANES]);
        for lane in 0..output_chunk.len() {
            let (point_y, point_x) = (y_chunk[lane], x_chunk[lane]);
            inside[lane] = point_y >= 0.0 && point_y <= last_row && point_x >= 0.0 && point_x <= last_col;
            // Outside lanes are parked on (0, 0), so every lane's arithmetic stays in range.
            if inside[lane] {
                (y[lane], x[lane]) = (point_y, point_x);
            }
        }
        cubic_lanes(padded, padded_cols, (y, x, inside), output_chunk);
    }
}

/// The input point `(y, x)` that output pixel `(r, c)` samples, with SciPy's
/// operation order (sum over the output axes, then the offset). Every affine
/// path uses this one function, so their coordinates agree to the bit.
#[inline(always)]
fn map_point(matrix: [[f64; 2]; 2], offset: [f64; 2], r: f64, c: f64) -> (f64, f64) {
    (r * matrix[0][0] + c * matrix[0][1] + offset[0], r * matrix[1][0] + c * matrix[1][1] + offset[1])
}

/// Pixels [`affine_cubic`] handles together: their coordinates and weights
/// are computed lane by lane in arrays, which the compiler turns into vector code.
const LANES: usize = 4;

/// The cubic affine loop over a flat output (`out_cols` wide), compiled for
/// AVX2 too and chosen at run time: the same operations in the same order
/// either way (Rust never fuses a multiply and an add on its own), so the
/// results do not depend on the CPU. Its helpers are inlined into each
/// compiled version.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn affine_cubic(
    padded: &[f64],
    (rows, cols): (usize, usize),
    matrix: [[f64; 2]; 2],
    offset: [f64; 2],
    output: &mut [f32],
    out_cols: usize,
) {
    let padded_cols = cols + PAD_BEFORE + PAD_AFTER;
    for (out_row, output_row) in output.chunks_exact_mut(out_cols).enumerate() {
        for (chunk_idx, output_chunk) in output_row.chunks_mut(LANES).enumerate() {
            let first = (out_row as f64, chunk_idx * LANES);
            let (y, x, inside) = lane_coordinates(matrix, offset, first, (rows, cols));
            cubic_lanes(padded, padded_cols, (y, x, inside), output_chunk);
        }
    }
}

/// The input points of the [`LANES`] output pixels from `(row, first column)`
/// and whether each is inside the image; outside lanes are parked on
/// `(0, 0)` so every lane's arithmetic stays finite and in range.
#[inline(always)]
fn lane_coordinates(
    matrix: [[f64; 2]; 2],
    offset: [f64; 2],
    (r, first_col): (f64, usize),
    (rows, cols): (usize, usize),
) -> ([f64; LANES], [f64; LANES], [bool; LANES]) {
    let (last_row, last_col) = (rows as f64 - 1.0, cols as f64 - 1.0);
    let mut y = [0.0f64; LANES];
    let mut x = [0.0f64; LANES];
    for lane in 0..LANES {
        let c = (first_col + lane) as f64;
        (y[lane], x[lane]) = map_point(matrix, offset, r, c);
    }
    // Outside [0, len - 1] (or NaN) is cval, as in SciPy's mode='constant'.
    let mut inside = [false; LANES];
    for lane in 0..LANES {
        inside[lane] = y[lane] >= 0.0 && y[lane] <= last_row && x[lane] >= 0.0 && x[lane] <= last_col;
        if !inside[lane] {
            y[lane] = 0.0;
            x[lane] = 0.0;
        }
    }
    (y, x, inside)
}

/// The four row and four column cubic weights of each lane, tap-major.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn lane_weights(
    (y, x): ([f64; LANES], [f64; LANES]),
    (floor_y, floor_x): ([f64; LANES], [f64; LANES]),
) -> ([[f64; LANES]; 4], [[f64; LANES]; 4]) {
    let mut row_weights = [[0.0f64; LANES]; 4];
    let mut col_weights = [[0.0f64; LANES]; 4];
    for lane in 0..LANES {
        let (wy, wx) = (Taps::cubic_weights(y[lane] - floor_y[lane]), Taps::cubic_weights(x[lane] - floor_x[lane]));
        for tap in 0..4 {
            row_weights[tap][lane] = wy[tap];
            col_weights[tap][lane] = wx[tap];
        }
    }
    (row_weights, col_weights)
}

/// The cubic spline at up to [`LANES`] points `(y, x)` into `output_chunk`
/// (0 where not `inside`; outside lanes are parked in range by the caller).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn cubic_lanes(
    padded: &[f64],
    padded_cols: usize,
    (y, x, inside): ([f64; LANES], [f64; LANES], [bool; LANES]),
    output_chunk: &mut [f32],
) {
    let (floor_y, floor_x) = (y.map(f64::floor), x.map(f64::floor));
    let (row_weights, col_weights) = lane_weights((y, x), (floor_y, floor_x));
    for (lane, pixel) in output_chunk.iter_mut().enumerate() {
        if !inside[lane] {
            *pixel = 0.0;
            continue;
        }
        // Tap rows floor_y - 1 ..= floor_y + 2 are padded rows floor_y ..= floor_y + 3.
        let base = floor_y[lane] as usize * padded_cols + floor_x[lane] as usize;
        let block = &padded[base..base + 3 * padded_cols + 4];
        *pixel = cubic_pixel(block, padded_cols, &row_weights, &col_weights, lane) as f32;
    }
}

/// One pixel from its 4x4 block of padded coefficients: the four tap rows
/// combined first (a 4-wide vector operation per row), then the columns
/// weighted: one horizontal sum per pixel instead of four.
#[inline(always)]
fn cubic_pixel(
    block: &[f64],
    padded_cols: usize,
    row_weights: &[[f64; LANES]; 4],
    col_weights: &[[f64; LANES]; 4],
    lane: usize,
) -> f64 {
    let mut combined = [0.0f64; 4];
    for (tap_row, weights) in row_weights.iter().enumerate() {
        let taps: &[f64; 4] = block[tap_row * padded_cols..tap_row * padded_cols + 4].try_into().expect("4 taps");
        for (sum, &tap) in combined.iter_mut().zip(taps) {
            *sum += weights[lane] * tap;
        }
    }
    combined[0] * col_weights[0][lane]
        + combined[1] * col_weights[1][lane]
        + combined[2] * col_weights[2][lane]
        + combined[3] * col_weights[3][lane]
}

/// The cubic taps of one pixel of an [`AffinePlan`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct PixelTaps {
    /// Offset of the pixel's 4x4 block in the padded coefficients; `usize::MAX` outside the image.
    base: usize,
    row_weights: [f64; 4],
    col_weights: [f64; 4],
}

/// A cubic affine map precomputed for one input and output shape: every
/// output pixel's block offset and weights. Applying it skips all coordinate
/// and weight arithmetic, which pays when the same map is used on many
/// images (the seed's rotations take only 30 angles). Results are identical
/// to [`affine_transform_into`] with the same map.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinePlan {
    in_shape: (usize, usize),
    out_shape: (usize, usize),
    pixels: Vec<PixelTaps>,
}

impl AffinePlan {
    /// Plans `affine_transform(matrix, offset)` from `in_shape` to `out_shape`, order 3.
    pub fn new(matrix: [[f64; 2]; 2], offset: [f64; 2], in_shape: (usize, usize), out_shape: (usize, usize)) -> Self {
        let (rows, cols) = in_shape;
        let (last_row, last_col) = (rows as f64 - 1.0, cols as f64 - 1.0);
        let padded_cols = cols + PAD_BEFORE + PAD_AFTER;
        let mut pixels = Vec::with_capacity(out_shape.0 * out_shape.1);
        for out_row in 0..out_shape.0 {
            let r = out_row as f64;
            for out_col in 0..out_shape.1 {
                let c = out_col as f64;
                // The arithmetic of `affine_cubic` (same `map_point`, floor and weights), so the taps are the same.
                let (y, x) = map_point(matrix, offset, r, c);
                let inside = y >= 0.0 && y <= last_row && x >= 0.0 && x <= last_col;
                pixels.push(if inside {
                    let (floor_y, floor_x) = (y.floor(), x.floor());
                    PixelTaps {
                        base: floor_y as usize * padded_cols + floor_x as usize,
                        row_weights: Taps::cubic_weights(y - floor_y),
                        col_weights: Taps::cubic_weights(x - floor_x),
                    }
                } else {
                    PixelTaps { base: usize::MAX, row_weights: [0.0; 4], col_weights: [0.0; 4] }
                });
            }
        }
        Self { in_shape, out_shape, pixels }
    }

    /// Plans `scipy.ndimage.rotate(image, degrees, reshape=False)` for images of `shape`.
    pub fn rotation(degrees: f64, shape: (usize, usize)) -> Self {
        let (matrix, offset) = rotation_map(degrees, shape);
        Self::new(matrix, offset, shape, shape)
    }

    /// Applies the plan to `image` (of the planned input shape) into `output`
    /// (of the planned output shape).
    pub fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        workspace: &mut Workspace,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        check_image(&image)?;
        check_output(self.in_shape, image.dim())?;
        check_output(self.out_shape, output.dim())?;
        workspace.load(&image, Order::Cubic);
        workspace.pad(self.in_shape.0, self.in_shape.1);
        let Workspace { padded, output_buffer, .. } = workspace;
        output_buffer.clear();
        output_buffer.resize(self.pixels.len(), 0.0);
        apply_plan(&self.pixels, padded, self.in_shape.1 + PAD_BEFORE + PAD_AFTER, output_buffer);
        output.assign(&ArrayView2::from_shape(self.out_shape, output_buffer.as_slice()).expect("sized above"));
        Ok(())
    }
}

#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn apply_plan(pixels: &[PixelTaps], padded: &[f64], padded_cols: usize, output: &mut [f32]) {
    for (taps, pixel) in pixels.iter().zip(output.iter_mut()) {
        if taps.base == usize::MAX {
            *pixel = 0.0;
            continue;
        }
        let block = &padded[taps.base..taps.base + 3 * padded_cols + 4];
        let mut combined = [0.0f64; 4];
        for (tap_row, &weight) in taps.row_weights.iter().enumerate() {
            let row: &[f64; 4] = block[tap_row * padded_cols..tap_row * padded_cols + 4].try_into().expect("4 taps");
            for (sum, &tap) in combined.iter_mut().zip(row) {
                *sum += weight * tap;
            }
        }
        let value = combined[0] * taps.col_weights[0]
            + combined[1] * taps.col_weights[1]
            + combined[2] * taps.col_weights[2]
            + combined[3] * taps.col_weights[3];
        *pixel = value as f32;
    }
}

/// The spline of order 0 or 1 at `(y, x)`, or 0 outside the image.
fn sample_general(coefficients: &[f64], (rows, cols): (usize, usize), order: Order, y: f64, x: f64) -> f64 {
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

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    #[test]
    fn whole_pixel_shifts_move_pixels_and_fill_with_zeros_even_beyond_the_image() {
        let image = Array2::from_shape_fn((4, 5), |(row, col)| (row * 5 + col + 1) as f32);
        let shifted = shift(image.view(), (1.0, -2.0), Order::Cubic).unwrap();
        assert_eq!(shifted.row(0).to_vec(), [0.0; 5]);
        assert_eq!(shifted.row(1).to_vec(), [3.0, 4.0, 5.0, 0.0, 0.0]);
        assert_eq!(shifted.row(3).to_vec(), [13.0, 14.0, 15.0, 0.0, 0.0]);
        for far in [(40.0, 0.0), (0.0, -5.0), (-4.0, 3.0), (2.0, 1e12)] {
            assert!(shift(image.view(), far, Order::Cubic).unwrap().iter().all(|&value| value == 0.0), "{far:?}");
        }
    }

    #[test]
    fn whole_pixel_shifts_of_non_contiguous_views_match_contiguous_ones() {
        let image = Array2::from_shape_fn((5, 7), |(row, col)| (row * 7 + col) as f32);
        let transposed_copy = image.t().to_owned();
        for offset in [(1.0, 2.0), (-2.0, -1.0), (0.0, 6.0)] {
            let from_view = shift(image.t(), offset, Order::Cubic).unwrap();
            assert_eq!(from_view, shift(transposed_copy.view(), offset, Order::Cubic).unwrap(), "{offset:?}");
        }
    }

    #[test]
    fn a_nan_angle_gives_zeros_like_scipy() {
        let image = Array2::from_elem((6, 6), 1.0f32);
        assert!(rotate(image.view(), f64::NAN, Order::Cubic).unwrap().iter().all(|&value| value == 0.0));
    }

    #[test]
    fn a_rotation_plan_gives_exactly_the_direct_rotation() {
        let image = Array2::from_shape_fn((28, 28), |(row, col)| ((row * 31 + col * 17) % 23) as f32 / 23.0);
        let mut workspace = Workspace::new();
        for degrees in [-15.0, -7.0, 0.0, 3.0, 14.0, 90.0, 33.5] {
            let direct = rotate(image.view(), degrees, Order::Cubic).unwrap();
            let mut planned = Array2::zeros((28, 28));
            AffinePlan::rotation(degrees, (28, 28))
                .apply_into(image.view(), &mut workspace, planned.view_mut())
                .unwrap();
            assert_eq!(planned, direct, "{degrees} degrees");
        }
        let error = AffinePlan::rotation(5.0, (28, 28)).apply_into(
            image.view(),
            &mut workspace,
            Array2::zeros((3, 3)).view_mut(),
        );
        assert!(matches!(error, Err(AugmentError::OutputShape { .. })));
    }
}
