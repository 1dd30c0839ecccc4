//! The batch API: deterministic per (seed, epoch, image index), independent of
//! threads and batch boundaries; errors instead of panics.

use augment::{AugmentError, Augmenter, Order, Pipeline};
use ndarray::{Array3, Axis, s};

fn digits(n_images: usize) -> Array3<f32> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/inputs.idx.gz");
    let all: Array3<f32> = idx::read_idx(path).unwrap().into_array::<f32>().unwrap().into_dimensionality().unwrap();
    all.slice(s![..n_images, .., ..]).to_owned()
}

fn augmenter(spec: &str, seed: u64) -> Augmenter {
    Augmenter::new(Pipeline::parse(spec).unwrap(), seed)
}

fn run(augmenter: &Augmenter, images: &Array3<f32>, indices: &[u64], epoch: u64, n_threads: usize) -> Array3<f32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(n_threads).build().unwrap();
    let mut output = Array3::zeros(images.dim());
    pool.install(|| augmenter.augment_batch(images.view(), indices, epoch, output.view_mut())).unwrap();
    output
}

#[test]
fn results_do_not_depend_on_threads_or_batch_boundaries() {
    let images = digits(64);
    let indices: Vec<u64> = (1000..1064).collect();
    for mode in ["seed", "fused"] {
        let augmenter = augmenter(mode, 42);
        let one_thread = run(&augmenter, &images, &indices, 5, 1);
        let two_threads = run(&augmenter, &images, &indices, 5, 2);
        assert_eq!(one_thread, two_threads, "{mode}");
        let mut serial = Array3::zeros(images.dim());
        let mut scratch = augment::original::Scratch::new();
        augmenter.augment_batch_serial(images.view(), &indices, 5, &mut scratch, serial.view_mut()).unwrap();
        assert_eq!(serial, one_thread, "{mode}");

        // The same images in two batches of other sizes, in another order.
        let mut split = Array3::zeros(images.dim());
        let reversed_first: Vec<usize> = (0..24).rev().collect();
        let first_images = images.select(Axis(0), &reversed_first);
        let first_indices: Vec<u64> = reversed_first.iter().map(|&i| indices[i]).collect();
        let first = run(&augmenter, &first_images, &first_indices, 5, 2);
        for (position, &i) in reversed_first.iter().enumerate() {
            split.index_axis_mut(Axis(0), i).assign(&first.index_axis(Axis(0), position));
        }
        let second = run(&augmenter, &images.slice(s![24.., .., ..]).to_owned(), &indices[24..], 5, 1);
        split.slice_mut(s![24.., .., ..]).assign(&second);
        assert_eq!(split, one_thread, "{mode}");

        // Another epoch or seed gives other transformations.
        assert_ne!(run(&augmenter, &images, &indices, 6, 2), one_thread);
        assert_ne!(run(&self::augmenter(mode, 43), &images, &indices, 5, 2), one_thread);
    }
}

#[test]
fn no_transform_copies_and_augmentation_moves_pixels() {
    let images = digits(8);
    let indices: Vec<u64> = (0..8).collect();
    assert_eq!(run(&augmenter("none", 1), &images, &indices, 0, 2), images);
    let augmented = run(&augmenter("seed", 1), &images, &indices, 0, 2);
    assert_ne!(augmented, images);
    // Rotation, zoom and shift move ink around but keep about as much of it.
    for (before, after) in images.outer_iter().zip(augmented.outer_iter()) {
        let (ink_before, ink_after) = (before.sum(), after.sum());
        assert!((ink_after / ink_before - 1.0).abs() < 0.35, "{ink_before} -> {ink_after}");
    }
}

#[test]
fn the_fused_transform_stays_close_to_the_seed_step() {
    let images = digits(200);
    let indices: Vec<u64> = (0..200).collect();
    let seed = run(&augmenter("seed", 9), &images, &indices, 0, 2);
    let fused = run(&augmenter("fused", 9), &images, &indices, 0, 2);
    let mean_abs = (&seed - &fused).mapv(f32::abs).mean().unwrap();
    // Same geometry: the two differ by interpolation blur, not by where the digit lands.
    assert!(mean_abs < 0.02, "mean absolute difference {mean_abs}");
    assert!(mean_abs > 0.0);
}

#[test]
fn bad_batches_are_errors_not_panics() {
    let augmenter = augmenter("seed", 0);
    let images = digits(4);
    let mut output = Array3::zeros((4, 28, 28));
    let empty = Array3::<f32>::zeros((0, 28, 28));
    let error = augmenter.augment_batch(empty.view(), &[], 0, Array3::zeros((0, 28, 28)).view_mut()).unwrap_err();
    assert_eq!(error, AugmentError::EmptyBatch);

    let error = augmenter.augment_batch(images.view(), &[0, 1, 2], 0, output.view_mut()).unwrap_err();
    assert_eq!(error, AugmentError::IndexCount { n_images: 4, n_indices: 3 });

    let mut wrong = Array3::zeros((4, 28, 27));
    let error = augmenter.augment_batch(images.view(), &[0, 1, 2, 3], 0, wrong.view_mut()).unwrap_err();
    assert!(matches!(error, AugmentError::BatchShape { .. }), "{error}");

    let flat = Array3::<f32>::zeros((2, 0, 5));
    let error = augmenter.augment_batch(flat.view(), &[0, 1], 0, Array3::zeros((2, 0, 5)).view_mut()).unwrap_err();
    assert!(matches!(error, AugmentError::EmptyImage { rows: 0, cols: 5 }), "{error}");

    let mut transposed = Array3::<f32>::zeros((28, 28, 4));
    let mut view = transposed.view_mut();
    view.swap_axes(0, 2);
    let error = augmenter.augment_batch(images.view(), &[0, 1, 2, 3], 0, view).unwrap_err();
    assert!(matches!(error, AugmentError::NotContiguous { .. }), "{error}");

    let ranges = augment::ParamRanges { shift: 2..2, ..Default::default() };
    let transform = augment::OriginalAffine { ranges, ..augment::OriginalAffine::stepwise() };
    let bad_ranges = Augmenter::new(Pipeline::new(vec![std::sync::Arc::new(transform)]), 0);
    let error = bad_ranges.augment_batch(images.view(), &[0, 1, 2, 3], 0, output.view_mut()).unwrap_err();
    assert!(error.to_string().contains("shift range 2..2 is empty"), "{error}");
    // One image and the serial batch check the ranges too (sampling an empty range would panic).
    let mut scratch = augment::original::Scratch::new();
    let error = bad_ranges
        .augment_one(images.index_axis(Axis(0), 0), 0, 0, &mut scratch, output.index_axis_mut(Axis(0), 0))
        .unwrap_err();
    assert!(error.to_string().contains("shift range 2..2 is empty"), "{error}");
    let error =
        bad_ranges.augment_batch_serial(images.view(), &[0, 1, 2, 3], 0, &mut scratch, output.view_mut()).unwrap_err();
    assert!(error.to_string().contains("shift range 2..2 is empty"), "{error}");
    let error = augmenter.augment_batch_serial(images.view(), &[0, 1], 0, &mut scratch, output.view_mut()).unwrap_err();
    assert_eq!(error, AugmentError::IndexCount { n_images: 4, n_indices: 2 });

    let error = augment::zoom(images.index_axis(Axis(0), 0), f64::NAN, Order::Cubic).unwrap_err();
    assert!(matches!(error, AugmentError::BadZoom { .. }), "{error}");
    let error = augment::rotate(ndarray::Array2::<f32>::zeros((0, 3)).view(), 5.0, Order::Cubic).unwrap_err();
    assert!(matches!(error, AugmentError::EmptyImage { .. }), "{error}");
}
