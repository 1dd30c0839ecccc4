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
/// `_init_anticausal_mirror`).
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
/// `image`: rows first, then columns. `line` is scratch space.
pub(crate) fn prefilter_2d(coefficients: &mut [f64], rows: usize, cols: usize, line: &mut Vec<f64>) {
    debug_assert_eq!(coefficients.len(), rows * cols);
    for row in coefficients.chunks_exact_mut(cols) {
        prefilter_line(row);
    }
    line.clear();
    line.resize(rows, 0.0);
    for col in 0..cols {
        for row in 0..rows {
            line[row] = coefficients[row * cols + col];
        }
        prefilter_line(line);
        for row in 0..rows {
            coefficients[row * cols + col] = line[row];
        }
    }
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
            Order::Nearest => (coordinate + 0.5).floor() as isize,
            Order::Linear | Order::Cubic => coordinate.floor() as isize - (n_taps as isize - 1) / 2,
        };
        let mut taps = Taps::default();
        let len = len as isize;
        for (tap_idx, index) in taps.indices.iter_mut().take(n_taps).enumerate() {
            let idx = start + tap_idx as isize;
            *index = if idx < 0 || idx >= len { mirror_index(idx, len) } else { idx as usize };
        }
        let t = coordinate - coordinate.floor();
        taps.weights = match order {
            Order::Nearest => [1.0, 0.0, 0.0, 0.0],
            Order::Linear => [1.0 - t, t, 0.0, 0.0],
            Order::Cubic => Self::cubic_weights(t),
        };
        Some(taps)
    }

    /// Cubic B-spline weights of the four taps around a point at fraction `t`
    /// past the second tap, in SciPy's arithmetic (the last weight is one minus
    /// the others).
    #[inline]
    pub(crate) fn cubic_weights(t: f64) -> [f64; 4] {
        let z = 1.0 - t;
        let w0 = z * z * z / 6.0;
        let w1 = (t * t * (t - 2.0) * 3.0 + 4.0) / 6.0;
        let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
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
