//! Golden tests against SciPy 1.17.1: fixtures written by `data/make_golden.py`
//! (and `make_golden_elastic.py`, `make_golden_affine.py`).
//! Every pixel of every case must be within 1e-4 of SciPy's (NaN where SciPy has NaN).

use std::path::PathBuf;

use augment::kernels::{Workspace, rotate_into, shift_into, zoom_window_into};
use augment::original::{Scratch, augment_original_into};
use augment::{AffineParams, Order};
use ndarray::{Array2, Array3, ArrayView2, Axis, s};

const TOLERANCE: f32 = 1e-4;

fn load<T: idx::IdxElement>(name: &str) -> ndarray::ArrayD<T> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    idx::read_idx(&path).unwrap_or_else(|error| panic!("{error}")).into_array::<T>().unwrap()
}

fn load3(name: &str) -> Array3<f32> {
    load::<f32>(name).into_dimensionality().unwrap()
}

fn params() -> Vec<AffineParams> {
    let raw = load::<f64>("params.idx.gz").into_dimensionality::<ndarray::Ix2>().unwrap();
    raw.outer_iter()
        .map(|row| AffineParams { angle_degrees: row[0], zoom: row[1], shift: (row[2] as i32, row[3] as i32) })
        .collect()
}

/// Largest absolute difference, treating NaN as equal only to NaN.
fn max_difference(ours: ArrayView2<'_, f32>, scipy: ArrayView2<'_, f32>) -> f32 {
    assert_eq!(ours.dim(), scipy.dim());
    ours.iter().zip(scipy.iter()).fold(0.0f32, |worst, (&a, &b)| match (a.is_nan(), b.is_nan()) {
        (true, true) => worst,
        (false, false) => worst.max((a - b).abs()),
        _ => f32::INFINITY,
    })
}

/// Runs `kernel` on every input and checks it against the fixture `expected_name`.
fn check_all(
    inputs: &Array3<f32>,
    expected_name: &str,
    mut kernel: impl FnMut(usize, ArrayView2<'_, f32>) -> Array2<f32>,
) {
    let expected = load3(expected_name);
    assert_eq!(expected.len_of(Axis(0)), inputs.len_of(Axis(0)).min(expected.len_of(Axis(0))));
    let mut worst = (0.0f32, 0);
    for (case, scipy) in expected.outer_iter().enumerate() {
        let ours = kernel(case, inputs.index_axis(Axis(0), case));
        let difference = max_difference(ours.view(), scipy);
        if difference > worst.0 {
            worst = (difference, case);
        }
    }
    assert!(worst.0 <= TOLERANCE, "{expected_name}: case {} differs by {}", worst.1, worst.0);
}

#[test]
fn there_are_at_least_200_cases_of_each_seed_operation() {
    for name in ["inputs.idx.gz", "rotate.idx.gz", "zoom_crop.idx.gz", "shift.idx.gz", "composite.idx.gz"] {
        assert!(load3(name).len_of(Axis(0)) >= 200, "{name}");
    }
    assert!(params().len() >= 200);
}

#[test]
fn rotate_matches_scipy() {
    let (inputs, params) = (load3("inputs.idx.gz"), params());
    let mut workspace = Workspace::new();
    check_all(&inputs, "rotate.idx.gz", |case, image| {
        let mut out = Array2::zeros((28, 28));
        rotate_into(image, params[case].angle_degrees, Order::Cubic, &mut workspace, out.view_mut()).unwrap();
        out
    });
    for (order, name) in [(Order::Nearest, "rotate_o0.idx.gz"), (Order::Linear, "rotate_o1.idx.gz")] {
        check_all(&inputs, name, |case, image| augment::rotate(image, params[case].angle_degrees, order).unwrap());
    }
}

#[test]
fn seed_zoom_with_crop_matches_scipy() {
    let (inputs, params) = (load3("inputs.idx.gz"), params());
    let mut workspace = Workspace::new();
    check_all(&inputs, "zoom_crop.idx.gz", |case, image| {
        // The seed's arithmetic, spelled out: crop start, then the window of the zoomed crop.
        let factor = params[case].zoom;
        let z = (28.0 * factor).round_ties_even() as usize;
        let top = (z - 28) / 2;
        let crop = image.slice(s![top.., top..]);
        let zoomed = augment::kernels::zoomed_len(28 - top, factor);
        let trim = (zoomed - 28) / 2;
        let mut out = Array2::zeros((28, 28));
        zoom_window_into(crop, factor, Order::Cubic, (trim, trim), &mut workspace, out.view_mut()).unwrap();
        out
    });
}

#[test]
fn plain_zoom_matches_scipy_including_rounding_half_to_even() {
    let inputs = load3("small_inputs.idx.gz");
    for (factor, name, shape) in [(1.5, "zoom_plain_150.idx.gz", (18, 26)), (0.7, "zoom_plain_070.idx.gz", (8, 12))] {
        check_all(&inputs, name, |_, image| {
            let out = augment::zoom(image, factor, Order::Cubic).unwrap();
            assert_eq!(out.dim(), shape);
            out
        });
    }
}

#[test]
fn shift_matches_scipy_for_whole_and_fractional_pixels() {
    let (inputs, params) = (load3("inputs.idx.gz"), params());
    let mut workspace = Workspace::new();
    check_all(&inputs, "shift.idx.gz", |case, image| {
        let (dy, dx) = params[case].shift;
        let mut out = Array2::zeros((28, 28));
        shift_into(image, (f64::from(dy), f64::from(dx)), Order::Cubic, &mut workspace, out.view_mut()).unwrap();
        out
    });
    for (order, name) in [
        (Order::Nearest, "shift_frac_o0.idx.gz"),
        (Order::Linear, "shift_frac_o1.idx.gz"),
        (Order::Cubic, "shift_frac_o3.idx.gz"),
    ] {
        check_all(&inputs, name, |case, image| {
            let (dy, dx) = params[case].shift;
            augment::shift(image, (f64::from(dy) + 0.37, f64::from(dx) - 0.81), order).unwrap()
        });
    }
}

#[test]
fn the_seed_composite_matches_scipy() {
    let (inputs, params) = (load3("inputs.idx.gz"), params());
    let mut scratch = Scratch::new();
    check_all(&inputs, "composite.idx.gz", |case, image| {
        let mut out = Array2::zeros((28, 28));
        augment_original_into(image, &params[case], Order::Cubic, &mut scratch, out.view_mut()).unwrap();
        out
    });
}

#[test]
fn nan_propagates_like_scipy() {
    let inputs = load3("nan_inputs.idx.gz");
    let expected = load3("rotate_nan.idx.gz");
    assert!(expected.iter().any(|value| value.is_nan()), "the fixture must hold NaN");
    check_all(&inputs, "rotate_nan.idx.gz", |_, image| augment::rotate(image, 10.0, Order::Cubic).unwrap());
}

/// The elastic distortion against SciPy (`data/make_golden_elastic.py`): the
/// Gaussian-smoothed, scaled fields within 1e-9, and the image sampled at the
/// displaced points within 1e-4 (NumPy's draws stand in for the key's).
#[test]
fn elastic_fields_and_sampling_match_scipy() {
    use augment::kernels::map_coordinates_into;
    use augment::transform::smooth_field;
    let inputs = load3("elastic_inputs.idx.gz");
    let params = load::<f64>("elastic_params.idx.gz").into_dimensionality::<ndarray::Ix2>().unwrap();
    let raw = load::<f64>("elastic_raw.idx.gz").into_dimensionality::<ndarray::Ix4>().unwrap();
    let scipy_fields = load::<f64>("elastic_fields.idx.gz").into_dimensionality::<ndarray::Ix4>().unwrap();
    let expected = load3("elastic_output.idx.gz");
    let expected_linear = load3("elastic_output_o1.idx.gz");
    assert!(inputs.len_of(Axis(0)) >= 30);
    let mut workspace = Workspace::new();
    let mut worst = (0.0f64, 0.0f32);
    for (index, image) in inputs.outer_iter().enumerate() {
        let (alpha, sigma) = (params[[index, 0]], params[[index, 1]]);
        let mut fields = Vec::new();
        for axis in 0..2 {
            let ours = smooth_field(raw.slice(s![index, axis, .., ..]), sigma, alpha).unwrap();
            let gap =
                (&ours - &scipy_fields.slice(s![index, axis, .., ..])).mapv(f64::abs).fold(0.0, |a: f64, &b| a.max(b));
            assert!(gap < 1e-9, "image {index} (alpha {alpha}, sigma {sigma}), field {axis}: {gap}");
            worst.0 = worst.0.max(gap);
            fields.push(ours);
        }
        let rows_at = Array2::from_shape_fn((28, 28), |(r, c)| r as f64 + fields[0][[r, c]]);
        let cols_at = Array2::from_shape_fn((28, 28), |(r, c)| c as f64 + fields[1][[r, c]]);
        for (order, scipy) in [(Order::Cubic, &expected), (Order::Linear, &expected_linear)] {
            let mut output = Array2::zeros((28, 28));
            map_coordinates_into(image, rows_at.view(), cols_at.view(), order, &mut workspace, output.view_mut())
                .unwrap();
            let gap = max_difference(output.view(), scipy.index_axis(Axis(0), index));
            assert!(gap < TOLERANCE, "image {index} (alpha {alpha}, sigma {sigma}, {order:?}): {gap}");
            worst.1 = worst.1.max(gap);
        }
    }
    eprintln!("elastic vs SciPy: fields within {:e}, images within {:e}", worst.0, worst.1);
}

/// The random affine transform against SciPy (`data/make_golden_affine.py`):
/// each case's draw, warped here, against `ndimage.affine_transform` with
/// the matrix and offset that draw makes, for linear and cubic sampling.
#[test]
fn random_affine_warps_match_scipy() {
    use augment::kernels::Workspace;
    use augment::transform::AffineDraw;
    let inputs = load3("affine_inputs.idx.gz");
    let params = load::<f64>("affine_params.idx.gz").into_dimensionality::<ndarray::Ix2>().unwrap();
    assert!(inputs.len_of(Axis(0)) >= 30 && params.len_of(Axis(0)) == inputs.len_of(Axis(0)));
    let mut workspace = Workspace::new();
    for (order, name) in [(Order::Linear, "affine_output.idx.gz"), (Order::Cubic, "affine_output_o3.idx.gz")] {
        check_all(&inputs, name, |case, image| {
            let row = params.row(case);
            let draw = AffineDraw { angle_degrees: row[0], zoom: (row[1], row[2]), shift: (row[3], row[4]) };
            let mut output = Array2::zeros(image.dim());
            draw.warp_into(image, order, &mut workspace, output.view_mut()).unwrap();
            output
        });
    }
}
