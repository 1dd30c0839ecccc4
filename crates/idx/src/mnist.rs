//! MNIST-format data sets (MNIST, Fashion-MNIST) as the seed program sees them.
//!
//! Pixels are `u8 * f32(1/255)`, as TensorFlow's `input_data` computes them
//! (`images.astype(float32) * (1.0 / 255.0)`), so in `[0, 1]`. Labels are class
//! indices `0..=9`. The first `validation_size` training images (5,000 by
//! default) form the validation split, the rest the training split; the
//! `t10k` files are the test split. A [`Holdout`] with another fold holds out
//! the `fold`-th block of `validation_size` images instead (cross-validation
//! folds, so the members of an ensemble can learn from different images).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array3, Axis};

use crate::{IdxArray, IdxError, ReadOptions, read_header, read_idx, read_idx_with};

/// The number of classes of MNIST-format label files.
pub const N_CLASSES: usize = 10;

/// The seed's validation size (TensorFlow's `read_data_sets` default).
pub const DEFAULT_VALIDATION_SIZE: usize = 5_000;

/// The default bound on the pixels one load may produce: 2^28 pixels, which
/// become 1 GiB of `f32` (MNIST's 70,000 images are 55 million pixels).
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 28;

/// Bounds on what loading a data set may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// The most pixels one image file may hold (each becomes a 4-byte `f32`).
    pub max_pixels: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// The four files of an MNIST-format data set, by their standard names.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Pixel scale: TensorFlow multiplies by the double `1/255` rounded to `f32`.
const PIXEL_SCALE: f32 = (1.0f64 / 255.0) as f32;

/// What went wrong loading an MNIST-format data set.
#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    /// The IDX file itself is unreadable or malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// An image file does not hold a `[n_images, rows, cols]` array of `u8`.
    #[error(
        "{file}: expected an image file of u8 with shape [n_images, rows, cols], found {element_type} with shape {shape:?}"
    )]
    NotImages {
        /// The file.
        file: String,
        /// Its element type.
        element_type: crate::ElementType,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A label file does not hold a `[n_labels]` array of `u8`.
    #[error("{file}: expected a label file of u8 with shape [n_labels], found {element_type} with shape {shape:?}")]
    NotLabels {
        /// The file.
        file: String,
        /// Its element type.
        element_type: crate::ElementType,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A label is not a class index.
    #[error("{file}: label {label} at index {label_idx} is not a class index (expected 0..={max})", max = N_CLASSES - 1)]
    BadLabel {
        /// The file.
        file: String,
        /// Position of the label.
        label_idx: usize,
        /// The value found.
        label: u8,
    },
    /// An image file holds more pixels than a load may produce.
    #[error(
        "{file}: shape {shape:?} holds {n_pixels} pixels, more than the {max_pixels} one load may turn into floats \
         (raise LoadOptions::max_pixels, or the trainer's --max-pixels, if the data really is that large)"
    )]
    TooManyPixels {
        /// The file.
        file: String,
        /// The shape its header declares.
        shape: Vec<usize>,
        /// Pixels it declares.
        n_pixels: u64,
        /// The bound in force.
        max_pixels: u64,
    },
    /// Image and label counts differ.
    #[error("{images_file} holds {n_images} images but {labels_file} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images_file: String,
        /// Images found.
        n_images: usize,
        /// The label file.
        labels_file: String,
        /// Labels found.
        n_labels: usize,
    },
    /// Training and test images have different sizes.
    #[error("training images are {train_rows}x{train_cols} but test images are {test_rows}x{test_cols}")]
    SizeMismatch {
        /// Training image rows.
        train_rows: usize,
        /// Training image columns.
        train_cols: usize,
        /// Test image rows.
        test_rows: usize,
        /// Test image columns.
        test_cols: usize,
    },
    /// The validation split would take every training image (or more).
    #[error(
        "validation size {validation_size} leaves no training images: the training file holds {n_train_file} images"
    )]
    ValidationTooLarge {
        /// Requested validation size.
        validation_size: usize,
        /// Images in the training file.
        n_train_file: usize,
    },
    /// The validation fold starts beyond the training file's images.
    #[error(
        "validation fold {fold} of {validation_size} images would start at image {start}, but the training file holds {n_train_file} images: folds 0 to {last_fold} exist"
    )]
    FoldBeyondFile {
        /// Requested fold.
        fold: usize,
        /// Requested validation size.
        validation_size: usize,
        /// The first image the fold would hold out.
        start: usize,
        /// Images in the training file.
        n_train_file: usize,
        /// The last fold that fits.
        last_fold: usize,
    },
}

/// Which training images form the validation split: the `fold`-th block of
/// `size` images of the training file (fold 0, the first `size` images, is
/// the seed's split). The last fold may be shorter than `size` when `size`
/// does not divide the file; the training split is every other image, in the
/// file's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdout {
    /// Images held out for validation.
    pub size: usize,
    /// Which block of `size` images is held out.
    pub fold: usize,
}

impl Holdout {
    /// The seed's split: the first `size` images.
    pub fn first(size: usize) -> Self {
        Self { size, fold: 0 }
    }
}

/// Images and labels of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Images, `[n_images, rows, cols]`, pixels in `[0, 1]`.
    pub images: Array3<f32>,
    /// Labels, `[n_images]`, each in `0..N_CLASSES`.
    pub labels: Array1<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height and width.
    pub fn image_size(&self) -> (usize, usize) {
        let (_, rows, cols) = self.images.dim();
        (rows, cols)
    }

    /// Mean and (population) standard deviation of all pixels, accumulated in `f64`.
    pub fn pixel_mean_std(&self) -> (f64, f64) {
        let n_pixels = self.images.len();
        if n_pixels == 0 {
            return (f64::NAN, f64::NAN);
        }
        let (sum, sum_squares) = self.images.iter().fold((0.0f64, 0.0f64), |(sum, sum_squares), &pixel| {
            let pixel = f64::from(pixel);
            (sum + pixel, sum_squares + pixel * pixel)
        });
        let mean = sum / n_pixels as f64;
        let variance = (sum_squares / n_pixels as f64 - mean * mean).max(0.0);
        (mean, variance.sqrt())
    }

    /// Number of images of each class.
    pub fn label_histogram(&self) -> [usize; N_CLASSES] {
        let mut counts = [0; N_CLASSES];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }
}

/// An MNIST-format data set split like the seed's.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// Training images: the training file without its first `validation_size` images.
    pub train: Split,
    /// Validation images: the first `validation_size` images of the training file.
    pub validation: Split,
    /// Test images: the `t10k` files.
    pub test: Split,
}

impl Mnist {
    /// Loads the four standard files from `dir` (gzip or plain; a file may also
    /// be present without its `.gz` suffix) with the given validation size.
    ///
    /// # Examples
    ///
    /// ```
    /// use idx::mnist::{FILE_NAMES, Mnist};
    /// use idx::{Compression, IdxArray, write_idx};
    /// use ndarray::{Array1, Array3};
    ///
    /// // A tiny data set in MNIST's format: 6 training and 2 test images.
    /// let dir = tempfile::tempdir()?;
    /// let images = |n| IdxArray::from_array(Array3::<u8>::from_elem((n, 28, 28), 255));
    /// let labels = |n| IdxArray::from_array(Array1::from_shape_fn(n, |i| (i % 10) as u8));
    /// write_idx(dir.path().join(FILE_NAMES[0]), &images(6), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[1]), &labels(6), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[2]), &images(2), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[3]), &labels(2), Compression::Gzip)?;
    ///
    /// let mnist = Mnist::load(dir.path(), 2)?;
    /// assert_eq!((mnist.train.len(), mnist.validation.len(), mnist.test.len()), (4, 2, 2));
    /// // Pixels are scaled to [0, 1]; the validation split is the first images of the file.
    /// assert_eq!(mnist.train.images[[0, 0, 0]], 1.0);
    /// assert_eq!(mnist.validation.labels.to_vec(), vec![0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>, validation_size: usize) -> Result<Self, MnistError> {
        Self::load_with(dir, validation_size, LoadOptions::default())
    }

    /// [`Mnist::load`] within `options`' bounds.
    pub fn load_with(dir: impl AsRef<Path>, validation_size: usize, options: LoadOptions) -> Result<Self, MnistError> {
        Self::load_holdout(dir, Holdout::first(validation_size), options)
    }

    /// [`Mnist::load_with`] holding out `holdout`'s fold of the training file.
    ///
    /// ```
    /// use idx::mnist::{FILE_NAMES, Holdout, LoadOptions, Mnist};
    /// use idx::{Compression, IdxArray, write_idx};
    /// use ndarray::{Array1, Array3};
    ///
    /// // Six training images labelled 0..6, and two test images.
    /// let dir = tempfile::tempdir()?;
    /// let labels = Array1::from_shape_fn(6, |i| i as u8);
    /// write_idx(dir.path().join(FILE_NAMES[0]), &IdxArray::from_array(Array3::<u8>::zeros((6, 28, 28))), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[1]), &IdxArray::from_array(labels), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[2]), &IdxArray::from_array(Array3::<u8>::zeros((2, 28, 28))), Compression::Gzip)?;
    /// write_idx(dir.path().join(FILE_NAMES[3]), &IdxArray::from_array(Array1::<u8>::zeros(2)), Compression::Gzip)?;
    ///
    /// let mnist = Mnist::load_holdout(dir.path(), Holdout { size: 2, fold: 1 }, LoadOptions::default())?;
    /// assert_eq!(mnist.validation.labels.to_vec(), vec![2, 3]);
    /// assert_eq!(mnist.train.labels.to_vec(), vec![0, 1, 4, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_holdout(dir: impl AsRef<Path>, holdout: Holdout, options: LoadOptions) -> Result<Self, MnistError> {
        let dir = dir.as_ref();
        let [train_images, train_labels, test_images, test_labels] = FILE_NAMES.map(|name| locate(dir, name));
        let train_file = load_split_with(&train_images, &train_labels, options)?;
        let test = load_split_with(&test_images, &test_labels, options)?;
        let (train_rows, train_cols) = train_file.image_size();
        let (test_rows, test_cols) = test.image_size();
        if (train_rows, train_cols) != (test_rows, test_cols) {
            return Err(MnistError::SizeMismatch { train_rows, train_cols, test_rows, test_cols });
        }
        let (validation, train) = split_off(train_file, holdout)?;
        Ok(Self { train, validation, test })
    }
}

/// The path of a standard file in `dir`: the name as given if it exists, else without `.gz`.
fn locate(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    match name.strip_suffix(".gz") {
        Some(plain_name) if !path.exists() && dir.join(plain_name).exists() => dir.join(plain_name),
        _ => path,
    }
}

/// Splits off `holdout`'s block as validation; the rest, in order, is training.
fn split_off(split: Split, holdout: Holdout) -> Result<(Split, Split), MnistError> {
    let n_train_file = split.len();
    let Holdout { size: validation_size, fold } = holdout;
    if validation_size >= n_train_file {
        return Err(MnistError::ValidationTooLarge { validation_size, n_train_file });
    }
    let start = fold.saturating_mul(validation_size);
    if start >= n_train_file {
        let last_fold = (n_train_file - 1) / validation_size;
        return Err(MnistError::FoldBeyondFile { fold, validation_size, start, n_train_file, last_fold });
    }
    let end = (start + validation_size).min(n_train_file);
    let held_out: Vec<usize> = (start..end).collect();
    let kept: Vec<usize> = (0..start).chain(end..n_train_file).collect();
    let take = |indices: &[usize]| Split {
        images: split.images.select(Axis(0), indices),
        labels: split.labels.select(Axis(0), indices),
    };
    Ok((take(&held_out), take(&kept)))
}

/// Loads and checks one image file and its label file, with the default bounds.
pub fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, MnistError> {
    load_split_with(images_path, labels_path, LoadOptions::default())
}

/// Loads and checks one image file and its label file. Both headers are
/// read first: shapes, the two counts and the pixel bound are checked before
/// any payload is decompressed, so a small gzip file that claims billions of
/// pixels is refused at once.
pub fn load_split_with(images_path: &Path, labels_path: &Path, options: LoadOptions) -> Result<Split, MnistError> {
    let image_header = read_header(images_path)?;
    let not_images = || MnistError::NotImages {
        file: images_path.display().to_string(),
        element_type: image_header.element_type,
        shape: image_header.shape.clone(),
    };
    let &[n_images, _, _] = image_header.shape.as_slice() else { return Err(not_images()) };
    if image_header.element_type != crate::ElementType::U8 {
        return Err(not_images());
    }
    let label_header = read_header(labels_path)?;
    let &[n_labels] = label_header.shape.as_slice() else {
        return Err(MnistError::NotLabels {
            file: labels_path.display().to_string(),
            element_type: label_header.element_type,
            shape: label_header.shape,
        });
    };
    if n_images != n_labels {
        return Err(MnistError::CountMismatch {
            images_file: images_path.display().to_string(),
            n_images,
            labels_file: labels_path.display().to_string(),
            n_labels,
        });
    }
    let n_pixels = image_header.n_elements().unwrap_or(u64::MAX);
    if n_pixels > options.max_pixels {
        return Err(MnistError::TooManyPixels {
            file: images_path.display().to_string(),
            shape: image_header.shape,
            n_pixels,
            max_pixels: options.max_pixels,
        });
    }
    let labels = load_labels(labels_path)?;
    let images = load_images_bounded(images_path, n_pixels)?;
    if images.len_of(Axis(0)) != labels.len() {
        return Err(MnistError::CountMismatch {
            images_file: images_path.display().to_string(),
            n_images: images.len_of(Axis(0)),
            labels_file: labels_path.display().to_string(),
            n_labels: labels.len(),
        });
    }
    Ok(Split { images, labels })
}

/// Loads an image file as `f32` in `[0, 1]`, `[n_images, rows, cols]`.
pub fn load_images(path: &Path) -> Result<Array3<f32>, MnistError> {
    load_images_bounded(path, LoadOptions::default().max_pixels)
}

/// [`load_images`], reading at most `max_pixels` bytes of payload.
fn load_images_bounded(path: &Path, max_pixels: u64) -> Result<Array3<f32>, MnistError> {
    let array = read_idx_with(path, ReadOptions { max_payload_bytes: max_pixels })?;
    let not_images = |array: &IdxArray| MnistError::NotImages {
        file: path.display().to_string(),
        element_type: array.element_type(),
        shape: array.shape().to_vec(),
    };
    let &[n_images, rows, cols] = array.shape() else { return Err(not_images(&array)) };
    let crate::IdxData::U8(pixels) = array.data() else { return Err(not_images(&array)) };
    let scaled: Vec<f32> = pixels.iter().map(|&pixel| f32::from(pixel) * PIXEL_SCALE).collect();
    Array3::from_shape_vec((n_images, rows, cols), scaled).map_err(|_| not_images(&array))
}

/// Loads a label file, checking every label is a class index.
pub fn load_labels(path: &Path) -> Result<Array1<u8>, MnistError> {
    let array = read_idx(path)?;
    let file = || path.display().to_string();
    let (element_type, shape) = (array.element_type(), array.shape().to_vec());
    let (_, data) = array.into_parts();
    let labels = match (shape.as_slice(), data) {
        (&[_], crate::IdxData::U8(labels)) => labels,
        _ => return Err(MnistError::NotLabels { file: file(), element_type, shape }),
    };
    if let Some((label_idx, &label)) = labels.iter().enumerate().find(|&(_, &label)| usize::from(label) >= N_CLASSES) {
        return Err(MnistError::BadLabel { file: file(), label_idx, label });
    }
    Ok(Array1::from_vec(labels))
}
