//! Whole batches `[n_images, rows, cols]`, in parallel with rayon.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3};
use rayon::prelude::*;

use crate::seed::{Scratch, augment_fused_into, augment_seed_into};
use crate::{AugmentError, Order, ParamRanges};

thread_local! {
    /// Each thread's scratch space, kept across batches: after the first
    /// images nothing is allocated, however many batches follow.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// The smallest number of images a rayon task takes.
const MIN_IMAGES_PER_TASK: usize = 8;

/// How to augment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The seed's three steps (rotate, crop-zoom-trim, shift), SciPy-exact.
    #[default]
    Seed,
    /// The same random transformation, composed and applied in one pass.
    Fused,
    /// No augmentation: the images are copied unchanged.
    None,
}

/// A configured augmentation: mode, parameter ranges, seed and order.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmenter {
    /// Seed, fused or none.
    pub mode: Mode,
    /// Where the random parameters come from.
    pub ranges: ParamRanges,
    /// The seed of the parameter generator.
    pub seed: u64,
    /// Interpolation order (the seed's is cubic).
    pub order: Order,
}

impl Augmenter {
    /// The seed's augmentation with the given mode and seed.
    pub fn new(mode: Mode, seed: u64) -> Self {
        Self { mode, ranges: ParamRanges::default(), seed, order: Order::Cubic }
    }

    /// Augments one image, the one with data-set index `image_idx`, for `epoch`.
    pub fn augment_one(
        &self,
        image: ArrayView2<'_, f32>,
        epoch: u64,
        image_idx: u64,
        scratch: &mut Scratch,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        let params = self.ranges.sample(self.seed, epoch, image_idx);
        match self.mode {
            Mode::Seed => augment_seed_into(image, &params, self.order, scratch, output),
            Mode::Fused => augment_fused_into(image, &params, self.order, scratch, output),
            Mode::None => {
                if output.dim() != image.dim() {
                    return Err(AugmentError::OutputShape { expected: image.dim(), found: output.dim() });
                }
                output.assign(&image);
                Ok(())
            }
        }
    }

    /// Augments a batch into `output` (same shape, standard layout).
    /// `image_indices[i]` is the data-set index of image `i`: the result for
    /// an image depends only on `(seed, epoch, its index)`, not on its place
    /// in the batch nor on the number of threads. Runs on rayon's current
    /// pool; each thread keeps its scratch space across calls.
    pub fn augment_batch(
        &self,
        images: ArrayView3<'_, f32>,
        image_indices: &[u64],
        epoch: u64,
        mut output: ArrayViewMut3<'_, f32>,
    ) -> Result<(), AugmentError> {
        self.ranges.validate()?;
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
        let output_pixels = output.as_slice_mut().ok_or(AugmentError::NotContiguous { what: "output batch" })?;
        let pixels_per_image = rows * cols;
        if pixels_per_image == 0 {
            return Err(AugmentError::EmptyImage { rows, cols });
        }
        // A 28x28 image is too little work to be worth a rayon task of its own.
        output_pixels
            .par_chunks_mut(pixels_per_image)
            .zip(image_indices.par_iter())
            .enumerate()
            .with_min_len(MIN_IMAGES_PER_TASK)
            .try_for_each(|(position, (out_pixels, &image_idx))| {
                let out = ArrayViewMut2::from_shape((rows, cols), out_pixels).expect("chunk has rows * cols pixels");
                let image = images.index_axis(ndarray::Axis(0), position);
                SCRATCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut scratch) => self.augment_one(image, epoch, image_idx, &mut scratch, out),
                    // Only reachable if augment_one were re-entered on this thread; stay correct anyway.
                    Err(_) => self.augment_one(image, epoch, image_idx, &mut Scratch::new(), out),
                })
            })
    }
}
