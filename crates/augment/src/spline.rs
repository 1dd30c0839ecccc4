//! B-spline machinery shared by every kernel, following `scipy.ndimage`:
//! the prefilter (`spline_filter` with the mirror boundary SciPy uses for
//! `mode='constant'`), the interpolation weights, and the mirror folding of
//! coefficient indices that fall outside the image.

use crate::Order;

/// The pole of the cubic B-spline prefilter, `sqrt(3) - 2`.
const CUBIC_POLE: f64 = -0.267_949_192_431_122_7;

/// Applies the cubic prefilter in place to one line of samples, turning them
/// into B-spline coefficients. Same recursion and mirror initialisation as
/// SciPy's `ni_splines.c` (`apply_filter` with `_init_causal_mirror` and
/// `_init_anticausal_mirror`). The kernels use [`prefilter_2d`], which runs
/// the same recursion on many lines at once; this one-line form is its
/// reference in the tests.
#[cfg(test)]
pub(crate) fn prefilter_line(line: &mut [f64]) {
    let n = line.len();
    if n <= 1 {
        return;
    }
    let z = CUBIC_POLE;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for value in line.iter_mut() {
        *value *= gain;
    }
    // Causal pass, initialised as if the line were mirrored about its ends.
    let z_n_1 = z.powi(n as i32 - 1);
    let mut first = line[0] + z_n_1 * line[n - 1];
    let mut z_i = z;
    for i in 1..n - 1 {
        first += z_i * (line[i] + z_n_1 * line[n - 1 - i]);
        z_i *= z;
    }
    line[0] = first / (1.0 - z_n_1 * z_n_1);
    for i in 1..n {
        line[i] += z * line[i - 1];
    }
    // Anticausal pass.
    line[n - 1] = (z * line[n - 2] + line[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        line[i] = z * (line[i + 1] - line[i]);
    }
}

/// Fills `coefficients` (row-major, `rows x cols`) with the prefiltered
/// image, along axis 0 and then axis 1 like SciPy's `spline_filter`.
///
/// The recursion of [`prefilter_line`] is serial along a line, so filtering
/// one line at a time waits on each multiply-add. Here every step runs on a
/// whole row of lines at once (axis 1 goes through a transposed copy), which
/// the compiler vectorises; each line still sees exactly the operations of
/// [`prefilter_line`], in the same order, so the results are identical.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub(crate) fn prefilter_2d(coefficients: &mut [f64], rows: usize, cols: usize, scratch: &mut Scratch2d) {
    debug_assert_eq!(coefficients.len(), rows * cols);
    prefilter_axis0(coefficients, rows, cols, &mut scratch.first);
    scratch.transposed.resize(rows * cols, 0.0);
    transpose(coefficients, rows, cols, &mut scratch.transposed);
    prefilter_axis0(&mut scratch.transposed, cols, rows, &mut scratch.first);
    transpose(&scratch.transposed, cols, rows, coefficients);
}

/// Scratch space of [`prefilter_2d`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Scratch2d {
    transposed: Vec<f64>,
    first: Vec<f64>,
}

/// Writes the transpose of `source` (`rows x cols`) into `target` (`cols x rows`).
#[inline(always)]
fn transpose(source: &[f64], rows: usize, cols: usize, target: &mut [f64]) {
    for (row, source_row) in source.chunks_exact(cols).enumerate() {
        for (col, &value) in source_row.iter().enumerate() {
            target[col * rows + row] = value;
        }
    }
}

/// [`prefilter_line`] applied to every column of `data` (`n x width`) at once.
#[inline(always)]
fn prefilter_axis0(data: &mut [f64], n: usize, width: usize, first: &mut Vec<f64>) {
    if n <= 1 {
        return;
    }
    let z = CUBIC_POLE;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for value in data.iter_mut() {
        *value *= gain;
    }
    let z_n_1 = z.powi(n as i32 - 1);
    // Every loop below runs over row slices of exactly `width` elements, so the
    // compiler drops the bounds checks and vectorises across the lines.
    first.clear();
    first.extend_from_slice(&data[..width]);
    {
        let last = &data[(n - 1) * width..n * width];
        let first = &mut first[..width];
        for j in 0..width {
            first[j] += z_n_1 * last[j];
        }
    }
    let mut z_i = z;
    for i in 1..n - 1 {
        let row = &data[i * width..(i + 1) * width];
        let mirrored = &data[(n - 1 - i) * width..(n - i) * width];
        let first = &mut first[..width];
        for j in 0..width {
            first[j] += z_i * (row[j] + z_n_1 * mirrored[j]);
        }
        z_i *= z;
    }
    let norm = 1.0 - z_n_1 * z_n_1;
    {
        let head = &mut data[..width];
        let first = &first[..width];
        for j in 0..width {
            head[j] = first[j] / norm;
        }
    }
    for i in 1..n {
        let (before, after) = data.split_at_mut(i * width);
        let (previous, current) = (&before[(i - 1) * width..], &mut after[..width]);
        for j in 0..width {
            current[j] += z * previous[j];
        }
    }
    {
        let (before, after) = data.split_at_mut((n - 1) * width);
        let (previous, last) = (&before[(n - 2) * width..], &mut after[..width]);
        for j in 0..width {
            last[j] = (z * previous[j] + last[j]) * z / (z * z - 1.0);
        }
    }
    for i in (0..n - 1).rev() {
        let (before, after) = data.split_at_mut((i + 1) * width);
        let (current, next) = (&mut before[i * width..], &after[..width]);
        for j in 0..width {
            current[j] = z * (next[j] - current[j]);
        }
    }
}

/// `x.floor()` without a call into libm (the baseline x86-64 target has no
/// rounding instruction). Exact for every `|x| < 2^52`; callers pass finite
/// coordinates well inside that.
#[inline(always)]
pub(crate) fn fast_floor(x: f64) -> f64 {
    let truncated = x as i64 as f64;
    if truncated > x { truncated - 1.0 } else { truncated }
}

/// Folds an index into `0..len` the way SciPy maps spline taps beyond the
/// edge: whole-sample mirror symmetry, period `2 * len - 2`.
#[inline]
pub(crate) fn mirror_index(idx: isize, len: isize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * len - 2;
    let folded = if idx < 0 {
        let wrapped = period * (-idx / period) + idx;
        if wrapped <= 1 - len { wrapped + period } else { -wrapped }
    } else if idx >= len {
        let wrapped = idx - period * (idx / period);
        if wrapped >= len { period - wrapped } else { wrapped }
    } else {
        idx
    };
    folded as usize
}

/// The taps along one axis for one sample position: up to four source
/// indices (already folded into the image) and their weights.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Taps {
    /// Source indices; only the first `order + 1` are used.
    pub indices: [usize; 4],
    /// Weights matching `indices`.
    pub weights: [f64; 4],
}

impl Taps {
    /// The taps for input coordinate `coordinate` along an axis of `len`
    /// samples, or `None` where SciPy's `mode='constant'` gives `cval`: any
    /// coordinate outside `[0, len - 1]`, without tolerance.
    #[inline]
    pub(crate) fn at(coordinate: f64, len: usize, order: Order) -> Option<Self> {
        // Written so that a NaN coordinate is outside too, as in SciPy (`cc > -1.0` fails for NaN).
        if !(coordinate >= 0.0 && coordinate <= len as f64 - 1.0) {
            return None;
        }
        let n_taps = order.n_taps();
        let start = match order {
            Order::Nearest => fast_floor(coordinate + 0.5) as isize,
            Order::Linear | Order::Cubic => fast_floor(coordinate) as isize - (n_taps as isize - 1) / 2,
        };
        let mut taps = Taps::default();
        let len = len as isize;
        for (tap_idx, index) in taps.indices.iter_mut().take(n_taps).enumerate() {
            let idx = start + tap_idx as isize;
            *index = if idx < 0 || idx >= len { mirror_index(idx, len) } else { idx as usize };
        }
        let t = coordinate - fast_floor(coordinate);
        taps.weights = match order {
            Order::Nearest => [1.0, 0.0, 0.0, 0.0],
            Order::Linear => [1.0 - t, t, 0.0, 0.0],
            Order::Cubic => Self::cubic_weights(t),
        };
        Some(taps)
    }

    /// Cubic B-spline weights of the four taps around a point at fraction `t`
    /// past the second tap, in SciPy's formulas (the last weight is one minus
    /// the others), multiplying by 1/6 where SciPy divides by 6: that moves
    /// results by about 1e-16 and saves three divisions per axis and pixel.
    #[inline(always)]
    pub(crate) fn cubic_weights(t: f64) -> [f64; 4] {
        const SIXTH: f64 = 1.0 / 6.0;
        let z = 1.0 - t;
        let w0 = z * z * z * SIXTH;
        let w1 = (t * t * (t - 2.0) * 3.0 + 4.0) * SIXTH;
        let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) * SIXTH;
        [w0, w1, w2, 1.0 - w0 - w1 - w2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_folding_matches_scipy_for_short_and_long_overshoots() {
        // len 5: ... 2 1 | 0 1 2 3 4 | 3 2 ...
        let folded: Vec<usize> = (-6..=10).map(|idx| mirror_index(idx, 5)).collect();
        assert_eq!(folded, [2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2]);
        assert_eq!(mirror_index(-3, 1), 0);
    }

    #[test]
    fn prefilter_then_cubic_interpolation_reproduces_the_samples() {
        let samples = [0.0, 1.0, 0.5, -2.0, 3.0, 0.25, 0.0];
        let mut coefficients = samples.to_vec();
        prefilter_line(&mut coefficients);
        for (idx, &sample) in samples.iter().enumerate() {
            let taps = Taps::at(idx as f64, samples.len(), Order::Cubic).unwrap();
            let value: f64 = (0..4).map(|tap| taps.weights[tap] * coefficients[taps.indices[tap]]).sum();
            assert!((value - sample).abs() < 1e-12, "{idx}: {value} vs {sample}");
        }
    }

    #[test]
    fn the_row_parallel_prefilter_equals_the_line_by_line_one_bit_for_bit() {
        let (rows, cols) = (7, 5);
        let image: Vec<f64> = (0..rows * cols).map(|i| ((i * 37) % 11) as f64 / 11.0 - 0.3).collect();
        let mut expected = image.clone();
        let mut line = vec![0.0; rows];
        for col in 0..cols {
            (0..rows).for_each(|row| line[row] = expected[row * cols + col]);
            prefilter_line(&mut line);
            (0..rows).for_each(|row| expected[row * cols + col] = line[row]);
        }
        expected.chunks_exact_mut(cols).for_each(prefilter_line);
        let mut fast = image;
        prefilter_2d(&mut fast, rows, cols, &mut Scratch2d::default());
        assert_eq!(fast, expected);
    }

    #[test]
    fn fast_floor_is_floor() {
        for x in [-2.5, -2.0, -1e-300, -0.0, 0.0, 0.3, 1.0, 27.999_999, 1e15 + 0.5] {
            assert_eq!(fast_floor(x), x.floor(), "{x}");
        }
    }

    #[test]
    fn weights_sum_to_one_and_outside_is_constant() {
        for t in [0.0, 0.1, 0.5, 0.99] {
            let sum: f64 = Taps::cubic_weights(t).iter().sum();
            assert!((sum - 1.0).abs() < 1e-15);
        }
        assert!(Taps::at(-1e-12, 28, Order::Cubic).is_none());
        assert!(Taps::at(27.0 + 1e-12, 28, Order::Cubic).is_none());
        assert!(Taps::at(27.0, 28, Order::Cubic).is_some());
    }
}
