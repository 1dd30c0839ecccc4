//! Augmentation as a list of transforms: each reads an image and writes one
//! of the same shape, drawing its randomness from the image's key
//! `(seed, epoch, image index)`, so a pipeline is deterministic per image
//! whatever the threads or batching.
//!
//! A pipeline is written as its transforms' specs joined by `+` (`seed`,
//! `fused`, `seed+OTHER`), or `none` for no transform; it is what a run's
//! recipe records. Adding a transform is one file in this folder
//! implementing [`Transform`], declared here with a line in [`KINDS`].

mod affine;
mod elastic;

use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use self::affine::{AffineDraw, RandomAffine};
pub(crate) use self::elastic::SmoothingPlan;
pub use self::elastic::{Elastic, smooth_field};
use crate::AugmentError;
use crate::original::{OriginalAffine, Scratch};

/// The image a transform is drawing for: its randomness is a function of these alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageKey {
    /// The run's seed.
    pub seed: u64,
    /// The 0-based epoch.
    pub epoch: u64,
    /// The image's index in the data set.
    pub image_idx: u64,
}

impl ImageKey {
    /// The random generator of this image on one transform's `stream`: a
    /// pure function of the key and the stream, so transforms that draw on
    /// different streams draw independently, whatever the threads or order.
    /// The seed's affine transform draws on stream 0.
    pub(crate) fn rng(self, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(mix(mix(self.seed ^ stream) ^ self.epoch) ^ self.image_idx))
    }
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One step of an augmentation.
pub trait Transform: fmt::Debug + Send + Sync {
    /// Checks the transform's settings; called once per batch.
    ///
    /// # Errors
    /// Settings that cannot be used.
    fn validate(&self) -> Result<(), AugmentError> {
        Ok(())
    }

    /// Writes the transformed `image` into `output` (the same shape).
    /// `scratch` is reused across calls.
    ///
    /// # Errors
    /// An image or output the transform cannot work on.
    fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        key: ImageKey,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError>;

    /// How a pipeline spec writes this transform; [`Pipeline::parse`] reads it back.
    fn spec(&self) -> String;
}

/// A transform's parser: reads what follows `NAME` in its spec (`""`, or the text after `NAME:`).
type Parser = fn(&str) -> Result<Arc<dyn Transform>, String>;

/// Every transform this build knows, by name: one line each.
pub const KINDS: &[(&str, Parser)] = &[
    ("seed", OriginalAffine::parse_stepwise),
    ("fused", OriginalAffine::parse_fused),
    ("elastic", Elastic::parse),
    ("affine", RandomAffine::parse),
];

/// The spec of the pipeline with no transform.
pub const NONE: &str = "none";

/// The transforms applied to each training image, in order.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    transforms: Vec<Arc<dyn Transform>>,
}

impl Pipeline {
    /// `transforms`, applied in order.
    pub fn new(transforms: Vec<Arc<dyn Transform>>) -> Self {
        Self { transforms }
    }

    /// No transform: images are copied unchanged.
    pub fn none() -> Self {
        Self::default()
    }

    /// The seed's augmentation: its rotate, crop-zoom and shift, SciPy-exact.
    pub fn seed() -> Self {
        Self::new(vec![Arc::new(OriginalAffine::stepwise())])
    }

    /// The pipeline a spec names: `none`, or transform specs joined by `+`.
    ///
    /// ```
    /// let pipeline = augment::Pipeline::parse("seed").unwrap();
    /// assert_eq!(pipeline.spec(), "seed");
    /// assert_eq!(augment::Pipeline::parse("none").unwrap().len(), 0);
    /// let message = augment::Pipeline::parse("seed+wobble").unwrap_err().to_string();
    /// assert!(message.contains("unknown transform \"wobble\""), "{message}");
    /// ```
    ///
    /// # Errors
    /// [`AugmentError::BadPipeline`] for an unknown transform (the message
    /// lists the known ones) or settings a transform refuses.
    pub fn parse(spec: &str) -> Result<Self, AugmentError> {
        if spec == NONE {
            return Ok(Self::none());
        }
        let bad = |reason: String| AugmentError::BadPipeline { spec: spec.to_owned(), reason };
        let mut transforms = Vec::new();
        for part in spec.split('+') {
            let (name, settings) = part.split_once(':').unwrap_or((part, ""));
            let Some((_, parser)) = KINDS.iter().find(|(known, _)| *known == name) else {
                let known: Vec<&str> = KINDS.iter().map(|(known, _)| *known).collect();
                return Err(bad(format!("unknown transform {name:?} (known: {}, or {NONE})", known.join(", "))));
            };
            let transform = parser(settings).map_err(bad)?;
            transform.validate().map_err(|error| bad(error.to_string()))?;
            transforms.push(transform);
        }
        Ok(Self { transforms })
    }

    /// The spec this pipeline is recorded as.
    pub fn spec(&self) -> String {
        if self.transforms.is_empty() {
            return NONE.to_owned();
        }
        self.transforms.iter().map(|transform| transform.spec()).collect::<Vec<_>>().join("+")
    }

    /// The number of transforms.
    pub fn len(&self) -> usize {
        self.transforms.len()
    }

    /// Whether there is no transform.
    pub fn is_empty(&self) -> bool {
        self.transforms.is_empty()
    }

    /// Checks every transform's settings.
    ///
    /// # Errors
    /// The first transform whose settings cannot be used.
    pub fn validate(&self) -> Result<(), AugmentError> {
        self.transforms.iter().try_for_each(|transform| transform.validate())
    }

    /// Applies the transforms in order to `image`, writing the last one's
    /// result into `output` (the image's shape); intermediate images live
    /// in `scratch`.
    ///
    /// # Errors
    /// An output of another shape than the image, or a transform's error.
    pub fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        key: ImageKey,
        scratch: &mut Scratch,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        if output.dim() != image.dim() {
            return Err(AugmentError::OutputShape { expected: image.dim(), found: output.dim() });
        }
        let Some((last, first)) = self.transforms.split_last() else {
            output.assign(&image);
            return Ok(());
        };
        if first.is_empty() {
            return last.apply_into(image, key, scratch, output);
        }
        // Taken out of `scratch` while the transforms use the rest of it.
        let mut stages = std::mem::take(&mut scratch.stages);
        let result = apply_through_stages(first, last.as_ref(), image, key, scratch, &mut stages, output);
        scratch.stages = stages;
        result
    }
}

/// Runs `first` ping-ponging between the two `stages` buffers, then `last` into `output`.
fn apply_through_stages(
    first: &[Arc<dyn Transform>],
    last: &dyn Transform,
    image: ArrayView2<'_, f32>,
    key: ImageKey,
    scratch: &mut Scratch,
    stages: &mut [Vec<f32>; 2],
    output: ArrayViewMut2<'_, f32>,
) -> Result<(), AugmentError> {
    let shape = image.dim();
    for buffer in stages.iter_mut() {
        buffer.clear();
        buffer.resize(shape.0 * shape.1, 0.0);
    }
    let [mut source, mut target] = stages.each_mut();
    first[0].apply_into(image, key, scratch, view_mut(shape, source))?;
    for transform in &first[1..] {
        transform.apply_into(view(shape, source), key, scratch, view_mut(shape, target))?;
        std::mem::swap(&mut source, &mut target);
    }
    last.apply_into(view(shape, source), key, scratch, output)
}

/// A stage buffer (sized to `shape` above) as an image.
fn view(shape: (usize, usize), buffer: &[f32]) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape(shape, buffer).expect("stage buffers are sized to the image")
}

/// A stage buffer (sized to `shape` above) as an output image.
fn view_mut(shape: (usize, usize), buffer: &mut [f32]) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape(shape, buffer).expect("stage buffers are sized to the image")
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    /// A transform as a new one would be written: adds its position's number to every pixel.
    #[derive(Debug)]
    struct Add(f32);

    impl Transform for Add {
        fn apply_into(
            &self,
            image: ArrayView2<'_, f32>,
            _key: ImageKey,
            _scratch: &mut Scratch,
            mut output: ArrayViewMut2<'_, f32>,
        ) -> Result<(), AugmentError> {
            output.zip_mut_with(&image, |out, &pixel| *out = pixel * 2.0 + self.0);
            Ok(())
        }
        fn spec(&self) -> String {
            format!("add:{}", self.0)
        }
    }

    const KEY: ImageKey = ImageKey { seed: 1, epoch: 2, image_idx: 3 };

    #[test]
    fn transforms_apply_in_order_through_any_number_of_stages() {
        let image = Array2::from_elem((4, 5), 1.0f32);
        for n in 0..5 {
            let pipeline =
                Pipeline::new((0..n).map(|index| Arc::new(Add(index as f32)) as Arc<dyn Transform>).collect());
            let mut output = Array2::zeros((4, 5));
            pipeline.apply_into(image.view(), KEY, &mut Scratch::new(), output.view_mut()).unwrap();
            // x -> 2x + i, for i = 0..n in order.
            let expected = (0..n).fold(1.0f32, |value, index| value * 2.0 + index as f32);
            assert!(output.iter().all(|&pixel| pixel == expected), "{n} transforms: {output}");
        }
        let spec = Pipeline::new(vec![Arc::new(Add(1.0)), Arc::new(Add(2.0))]).spec();
        assert_eq!(spec, "add:1+add:2");
    }

    #[test]
    fn the_seed_pipeline_is_the_seed_step_and_the_specs_read_back() {
        let image = Array2::from_shape_fn((28, 28), |(row, col)| ((row * 3 + col) % 7) as f32 / 6.0);
        let mut through_pipeline = Array2::zeros((28, 28));
        Pipeline::seed().apply_into(image.view(), KEY, &mut Scratch::new(), through_pipeline.view_mut()).unwrap();
        let params = crate::ParamRanges::default().sample(KEY.seed, KEY.epoch, KEY.image_idx);
        let mut direct = Array2::zeros((28, 28));
        crate::original::augment_original_into(
            image.view(),
            &params,
            crate::Order::Cubic,
            &mut Scratch::new(),
            direct.view_mut(),
        )
        .unwrap();
        assert_eq!(through_pipeline, direct);
        for spec in ["none", "seed", "fused", "seed+fused"] {
            assert_eq!(Pipeline::parse(spec).unwrap().spec(), spec);
        }
        let message = Pipeline::parse("seed:3").unwrap_err().to_string();
        assert!(message.contains("\"seed:3\"") && message.contains("takes no settings"), "{message}");
        let mut wrong = Array2::zeros((27, 28));
        let error = Pipeline::none().apply_into(image.view(), KEY, &mut Scratch::new(), wrong.view_mut()).unwrap_err();
        assert_eq!(error, AugmentError::OutputShape { expected: (28, 28), found: (27, 28) });
    }
}
