//! The MNIST split as the seed sees it, on the embedded data and on small fixtures.

use std::path::{Path, PathBuf};

use idx::mnist::{DEFAULT_VALIDATION_SIZE, FILE_NAMES, Holdout, LoadOptions, Mnist, MnistError};
use idx::{Compression, IdxArray, IdxData, read_idx, write_idx};

fn embedded_mnist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

#[test]
fn embedded_mnist_splits_like_tensorflow_input_data() {
    let mnist = Mnist::load(embedded_mnist(), DEFAULT_VALIDATION_SIZE).unwrap();
    assert_eq!((mnist.train.len(), mnist.validation.len(), mnist.test.len()), (55_000, 5_000, 10_000));
    assert_eq!(mnist.train.images.dim(), (55_000, 28, 28));

    // The validation split is the FIRST 5,000 training images, the training split the rest.
    let raw_images = read_idx(embedded_mnist().join(FILE_NAMES[0])).unwrap().into_array::<u8>().unwrap();
    let raw_labels = read_idx(embedded_mnist().join(FILE_NAMES[1])).unwrap().into_array::<u8>().unwrap();
    assert_eq!(mnist.validation.labels[0], raw_labels[[0]]);
    assert_eq!(mnist.train.labels[0], raw_labels[[5_000]]);
    assert_eq!(mnist.train.labels[54_999], raw_labels[[59_999]]);
    // Pixels are u8 times the f32 nearest 1/255, as TensorFlow computes them.
    let scale = (1.0f64 / 255.0) as f32;
    for (row, col) in [(14, 14), (10, 20), (0, 0)] {
        assert_eq!(mnist.train.images[[7, row, col]], f32::from(raw_images[[5_007, row, col]]) * scale);
    }
    assert!(mnist.test.images.iter().all(|&pixel| (0.0..=1.0).contains(&pixel)));
    assert_eq!(mnist.test.images.iter().cloned().fold(f32::MIN, f32::max), 1.0);

    let histogram = mnist.test.label_histogram();
    assert_eq!(histogram.iter().sum::<usize>(), 10_000);
    assert_eq!(histogram[1], 1_135);
}

#[test]
fn validation_size_is_configurable() {
    let mnist = Mnist::load(embedded_mnist(), 100).unwrap();
    assert_eq!((mnist.train.len(), mnist.validation.len()), (59_900, 100));
    let everything = Mnist::load(embedded_mnist(), 0).unwrap();
    assert_eq!((everything.train.len(), everything.validation.len()), (60_000, 0));
}

/// Writes a small MNIST-format folder: `n_train` and `n_test` images of 4x4.
fn write_small(dir: &Path, n_train_images: usize, n_train_labels: usize, train_labels: Option<Vec<u8>>) {
    let images = |n: usize| IdxArray::new(vec![n, 4, 4], IdxData::U8((0..n * 16).map(|i| i as u8).collect())).unwrap();
    let labels = |n: usize| IdxArray::new(vec![n], IdxData::U8((0..n).map(|i| (i % 10) as u8).collect())).unwrap();
    let train_labels = match train_labels {
        Some(values) => IdxArray::new(vec![values.len()], IdxData::U8(values)).unwrap(),
        None => labels(n_train_labels),
    };
    write_idx(dir.join(FILE_NAMES[0]), &images(n_train_images), Compression::Gzip).unwrap();
    write_idx(dir.join(FILE_NAMES[1]), &train_labels, Compression::Gzip).unwrap();
    // The test files are written plain and without `.gz`: the loader accepts both.
    write_idx(dir.join("t10k-images-idx3-ubyte"), &images(3), Compression::None).unwrap();
    write_idx(dir.join("t10k-labels-idx1-ubyte"), &labels(3), Compression::None).unwrap();
}

#[test]
fn small_folder_loads_with_plain_and_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 12, 12, None);
    let mnist = Mnist::load(dir.path(), 2).unwrap();
    assert_eq!((mnist.train.len(), mnist.validation.len(), mnist.test.len()), (10, 2, 3));
    assert_eq!(mnist.train.labels[0], 2);
    assert_eq!(mnist.train.image_size(), (4, 4));
}

#[test]
fn counts_that_differ_are_reported_with_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 12, 11, None);
    let error = Mnist::load(dir.path(), 2).unwrap_err();
    assert!(matches!(error, MnistError::CountMismatch { n_images: 12, n_labels: 11, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz holds 12 images"), "{message}");
    assert!(message.contains("train-labels-idx1-ubyte.gz holds 11 labels"), "{message}");
}

#[test]
fn labels_outside_zero_to_nine_are_rejected_with_their_index() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 3, 3, Some(vec![1, 10, 2]));
    let error = Mnist::load(dir.path(), 1).unwrap_err();
    assert!(matches!(error, MnistError::BadLabel { label_idx: 1, label: 10, .. }), "{error:?}");
    assert!(error.to_string().contains("label 10 at index 1 is not a class index (expected 0..=9)"), "{error}");
}

#[test]
fn a_validation_split_that_takes_every_image_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 12, 12, None);
    let error = Mnist::load(dir.path(), 12).unwrap_err();
    assert!(matches!(error, MnistError::ValidationTooLarge { validation_size: 12, n_train_file: 12 }), "{error:?}");
}

#[test]
fn a_fold_holds_out_its_block_and_trains_on_every_other_image_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Labels 0..9 then 0..1: image i is labelled i % 10, and its first pixel is 16 i (mod 256).
    write_small(dir.path(), 12, 12, None);
    let fold = |fold| Mnist::load_holdout(dir.path(), Holdout { size: 5, fold }, LoadOptions::default());
    let first_pixels = |split: &idx::mnist::Split| {
        split.images.outer_iter().map(|image| (image[[0, 0]] * 255.0).round() as usize / 16).collect::<Vec<_>>()
    };
    let zero = fold(0).unwrap();
    assert_eq!(zero, Mnist::load(dir.path(), 5).unwrap(), "fold 0 is the seed's split");
    let one = fold(1).unwrap();
    assert_eq!(first_pixels(&one.validation), vec![5, 6, 7, 8, 9]);
    assert_eq!(first_pixels(&one.train), vec![0, 1, 2, 3, 4, 10, 11]);
    assert_eq!(one.train.labels.to_vec(), vec![0, 1, 2, 3, 4, 0, 1], "labels follow their images");
    // The last fold is what is left: 2 images.
    let two = fold(2).unwrap();
    assert_eq!((first_pixels(&two.validation), two.train.len()), (vec![10, 11], 10));
    assert_eq!(one.test, zero.test, "the test split does not depend on the fold");
}

#[test]
fn a_fold_beyond_the_file_is_refused_naming_the_folds_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 12, 12, None);
    let error = Mnist::load_holdout(dir.path(), Holdout { size: 5, fold: 3 }, LoadOptions::default()).unwrap_err();
    assert!(matches!(error, MnistError::FoldBeyondFile { fold: 3, start: 15, last_fold: 2, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "validation fold 3 of 5 images would start at image 15, but the training file holds 12 images: folds 0 to 2 exist"
    );
    let huge = Mnist::load_holdout(dir.path(), Holdout { size: 5, fold: usize::MAX }, LoadOptions::default());
    assert!(matches!(huge, Err(MnistError::FoldBeyondFile { .. })), "no overflow: {huge:?}");
}

#[test]
fn files_of_the_wrong_kind_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 3, 3, None);
    // Swap in a label-shaped array where the training images belong.
    let labels = IdxArray::new(vec![3], IdxData::U8(vec![0, 1, 2])).unwrap();
    write_idx(dir.path().join(FILE_NAMES[0]), &labels, Compression::None).unwrap();
    let message = Mnist::load(dir.path(), 1).unwrap_err().to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz: expected an image file of u8"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    write_small(dir.path(), 3, 3, None);
    let float_labels = IdxArray::new(vec![3], IdxData::F32(vec![0.0, 1.0, 2.0])).unwrap();
    write_idx(dir.path().join(FILE_NAMES[1]), &float_labels, Compression::None).unwrap();
    let message = Mnist::load(dir.path(), 1).unwrap_err().to_string();
    assert!(message.contains("expected a label file of u8 with shape [n_labels], found f32"), "{message}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let message = Mnist::load(dir.path(), 1).unwrap_err().to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz: cannot open"), "{message}");
}

/// A gzip file holding only an IDX header that claims `shape` of u8 (no payload).
fn write_header_only(path: &Path, shape: &[u32]) {
    use std::io::Write;
    let mut header = vec![0u8, 0, 0x08, shape.len() as u8];
    for dim in shape {
        header.extend_from_slice(&dim.to_be_bytes());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&header).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

#[test]
fn a_header_claiming_too_many_pixels_is_refused_before_any_payload_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // 5,000,000 images of 28x28: 3.9 billion pixels, 15.7 GB of floats, in a file of a few dozen bytes.
    let (images, labels) = (dir.path().join("bomb-images.gz"), dir.path().join("bomb-labels.gz"));
    write_header_only(&images, &[5_000_000, 28, 28]);
    write_header_only(&labels, &[5_000_000]);
    let error = idx::mnist::load_split(&images, &labels).unwrap_err();
    // Had the payload been read, the error would be a truncated payload.
    assert!(matches!(error, MnistError::TooManyPixels { n_pixels: 3_920_000_000, .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("bomb-images.gz") && message.contains("more than the 268435456"), "{message}");

    // The bound is the caller's to raise (or lower).
    let small = idx::mnist::LoadOptions { max_pixels: 100 };
    write_small(dir.path(), 12, 12, None);
    let error = Mnist::load_with(dir.path(), 2, small).unwrap_err();
    assert!(matches!(error, MnistError::TooManyPixels { max_pixels: 100, .. }), "{error}");
    Mnist::load_with(dir.path(), 2, idx::mnist::LoadOptions { max_pixels: 12 * 16 }).unwrap();
}

#[test]
fn the_label_count_is_checked_before_the_image_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = (dir.path().join("images.gz"), dir.path().join("labels.gz"));
    write_header_only(&images, &[12, 28, 28]);
    write_idx(&labels, &IdxArray::new(vec![10], IdxData::U8(vec![1; 10])).unwrap(), Compression::Gzip).unwrap();
    let error = idx::mnist::load_split(&images, &labels).unwrap_err();
    assert!(matches!(error, MnistError::CountMismatch { n_images: 12, n_labels: 10, .. }), "{error}");
}
