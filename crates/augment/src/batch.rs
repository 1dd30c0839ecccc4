//! Whole batches `[n_images, rows, cols]`, in parallel with rayon.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::AugmentError;
use crate::original::Scratch;
use crate::transform::{ImageKey, Pipeline};

thread_local! {
    /// Each thread's scratch space, kept across batches: after the first
    /// images nothing is allocated, however many batches follow.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// The smallest number of images a rayon task takes.
const MIN_IMAGES_PER_TASK: usize = 8;

/// A configured augmentation: the transforms and the seed their randomness comes from.
#[derive(Debug, Clone, Default)]
pub struct Augmenter {
    /// The transforms, in order.
    pub pipeline: Pipeline,
    /// The seed of every transform's randomness.
    pub seed: u64,
}

impl Augmenter {
    /// `pipeline` with randomness from `seed`.
    pub fn new(pipeline: Pipeline, seed: u64) -> Self {
        Self { pipeline, seed }
    }

    /// Augments one image, the one with data-set index `image_idx`, for
    /// `epoch`, into `output` (the image's shape). `scratch` is reused
    /// across calls, so nothing is allocated once it has grown.
    ///
    /// # Examples
    ///
    /// ```
    /// use augment::{Augmenter, Pipeline, original::Scratch};
    /// use ndarray::Array2;
    ///
    /// let augmenter = Augmenter::new(Pipeline::seed(), 7);
    /// let digit = Array2::from_shape_fn((28, 28), |(row, col)| if (10..18).contains(&col) && row > 4 { 1.0 } else { 0.0 });
    /// let mut output = Array2::zeros((28, 28));
    /// augmenter.augment_one(digit.view(), 0, 42, &mut Scratch::new(), output.view_mut())?;
    /// // The same (seed, epoch, index) always gives the same image.
    /// let mut again = Array2::zeros((28, 28));
    /// augmenter.augment_one(digit.view(), 0, 42, &mut Scratch::new(), again.view_mut())?;
    /// assert_eq!(output, again);
    /// # Ok::<(), augment::AugmentError>(())
    /// ```
    pub fn augment_one(
        &self,
        image: ArrayView2<'_, f32>,
        epoch: u64,
        image_idx: u64,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        self.pipeline.validate()?;
        self.augment_checked(image, epoch, image_idx, scratch, output)
    }

    /// [`Augmenter::augment_one`] once the pipeline is known to be valid.
    fn augment_checked(
        &self,
        image: ArrayView2<'_, f32>,
        epoch: u64,
        image_idx: u64,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        let key = ImageKey { seed: self.seed, epoch, image_idx };
        self.pipeline.apply_into(image, key, scratch, output)
    }

    /// Checks a batch call's arguments; returns the pixels per image.
    fn check_batch(
        &self,
        images: &ArrayView3<'_, f32>,
        image_indices: &[u64],
        output: &ArrayViewMut3<'_, f32>,
    ) -> Result<usize, AugmentError> {
        self.pipeline.validate()?;
        let (n_images, rows, cols) = images.dim();
        if n_images == 0 {
            return Err(AugmentError::EmptyBatch);
        }
        if output.dim() != images.dim() {
            return Err(AugmentError::BatchShape { images: images.dim(), output: output.dim() });
        }
        if image_indices.len() != n_images {
            return Err(AugmentError::IndexCount { n_images, n_indices: image_indices.len() });
        }
        if !output.is_standard_layout() {
            return Err(AugmentError::NotContiguous { what: "output batch" });
        }
        if rows * cols == 0 {
            return Err(AugmentError::EmptyImage { rows, cols });
        }
        Ok(rows * cols)
    }

    /// Augments a batch into `output` (same shape, standard layout).
    /// `image_indices[i]` is the data-set index of image `i`: the result for
    /// an image depends only on `(seed, epoch, its index)`, not on its place
    /// in the batch nor on the number of threads. Runs on rayon's current
    /// pool; each thread keeps its scratch space across calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use augment::{Augmenter, Pipeline, original::Scratch};
    /// use ndarray::Array3;
    ///
    /// let augmenter = Augmenter::new(Pipeline::seed(), 7);
    /// let batch = Array3::from_shape_fn((4, 28, 28), |(image, row, col)| ((image + row + col) % 5) as f32 / 4.0);
    /// let mut parallel = Array3::zeros((4, 28, 28));
    /// augmenter.augment_batch(batch.view(), &[10, 11, 12, 13], 3, parallel.view_mut())?;
    /// // On the calling thread alone, the same images.
    /// let mut serial = Array3::zeros((4, 28, 28));
    /// augmenter.augment_batch_serial(batch.view(), &[10, 11, 12, 13], 3, &mut Scratch::new(), serial.view_mut())?;
    /// assert_eq!(parallel, serial);
    /// # Ok::<(), augment::AugmentError>(())
    /// ```
    pub fn augment_batch(
        &self,
        images: ArrayView3<'_, f32>,
        image_indices: &[u64],
        epoch: u64,
        mut output: ArrayViewMut3<'_, f32>,
    ) -> Result<(), AugmentError> {
        let pixels_per_image = self.check_batch(&images, image_indices, &output)?;
        let (_, rows, cols) = images.dim();
        let output_pixels = output.as_slice_mut().ok_or(AugmentError::NotContiguous { what: "output batch" })?;
        // A 28x28 image is too little work to be worth a rayon task of its own.
        output_pixels
            .par_chunks_mut(pixels_per_image)
            .zip(image_indices.par_iter())
            .enumerate()
            .with_min_len(MIN_IMAGES_PER_TASK)
            .try_for_each(|(position, (out_pixels, &image_idx))| {
                let out = ArrayViewMut2::from_shape((rows, cols), out_pixels).expect("chunk has rows * cols pixels");
                let image = images.index_axis(Axis(0), position);
                SCRATCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut scratch) => self.augment_checked(image, epoch, image_idx, &mut scratch, out),
                    // Only reachable if augment_one were re-entered on this thread; stay correct anyway.
                    Err(_) => self.augment_checked(image, epoch, image_idx, &mut Scratch::new(), out),
                })
            })
    }

    /// [`Augmenter::augment_batch`] on the calling thread alone, with the
    /// caller's scratch space: the same images, without a thread pool (whose
    /// idle workers would spin and take CPU from other work on a small machine).
    pub fn augment_batch_serial(
        &self,
        images: ArrayView3<'_, f32>,
        image_indices: &[u64],
        epoch: u64,
        scratch: &mut Scratch,
        mut output: ArrayViewMut3<'_, f32>,
    ) -> Result<(), AugmentError> {
        self.check_batch(&images, image_indices, &output)?;
        images
            .outer_iter()
            .zip(output.outer_iter_mut())
            .zip(image_indices)
            .try_for_each(|((image, out), &image_idx)| self.augment_checked(image, epoch, image_idx, scratch, out))
    }
}
