//! What evaluation, prediction, the report, the web app and export run:
//! something that maps a batch of images to class scores. The network is
//! one; an ensemble ([`crate::Ensemble`], the log of its members' mean
//! probabilities) is another, with nothing else changed.

use std::path::Path;

use tch::{Device, Tensor};

use crate::checkpoint::{self, Checkpoint};
use crate::{ModelError, Network};

/// Maps a batch of images to class scores whose softmax is its class probabilities.
pub trait Classifier: Send {
    /// Scores `[N, n_classes]` for images `[N, 28, 28]` or `[N, 1, 28, 28]`
    /// on [`Classifier::device`], in evaluation mode (callers run it without gradients).
    ///
    /// # Errors
    /// Images of another shape, or a libtorch failure.
    fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError>;

    /// The device its weights are on; batches are moved there.
    fn device(&self) -> Device;

    /// A copy holding plain values, nothing requiring gradients: what
    /// libtorch's tracer can export.
    ///
    /// # Errors
    /// [`ModelError::Libtorch`] when the device cannot hold the copy.
    fn detached(&self) -> Result<Box<dyn Classifier>, ModelError>;
}

impl Classifier for Network {
    fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        self.forward(images, false)
    }

    fn device(&self) -> Device {
        Network::device(self)
    }

    fn detached(&self) -> Result<Box<dyn Classifier>, ModelError> {
        Ok(Box::new(self.detached_copy()?))
    }
}

/// The log of the mean of the softmax probabilities of several class scores
/// `[N, n_classes]` (an ensemble's members, or one network's views): scores
/// whose softmax is that mean.
///
/// # Errors
/// The first failed score, or a libtorch failure; [`ModelError::Setting`] for none.
pub(crate) fn log_mean_probabilities(
    scores: impl IntoIterator<Item = Result<Tensor, ModelError>>,
) -> Result<Tensor, ModelError> {
    let (mut sum, mut count): (Option<Tensor>, usize) = (None, 0);
    for score in scores {
        let probabilities =
            score?.f_softmax(-1, tch::Kind::Float).map_err(ModelError::libtorch("class probabilities to average"))?;
        sum = Some(match sum {
            None => probabilities,
            Some(sum) => sum.f_add(&probabilities).map_err(ModelError::libtorch("summing probabilities"))?,
        });
        count += 1;
    }
    let sum = sum.ok_or_else(|| ModelError::Setting {
        setting: "a mean of probabilities",
        reason: "needs at least one score".into(),
    })?;
    sum.f_div_scalar(count as f64).and_then(|mean| mean.f_log()).map_err(ModelError::libtorch("the mean probabilities"))
}

/// A boxed classifier is one: what wraps a classifier (test-time views, say)
/// can hold a [`Classifier::detached`] copy.
impl Classifier for Box<dyn Classifier> {
    fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        self.as_ref().logits(images)
    }

    fn device(&self) -> Device {
        self.as_ref().device()
    }

    fn detached(&self) -> Result<Box<dyn Classifier>, ModelError> {
        self.as_ref().detached()
    }
}

/// A checkpoint loaded to run its network, and what is wrong with its numbers, if anything.
#[derive(Debug)]
pub struct ForInference {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Why its answers may be meaningless: a weight, moving average or
    /// optimizer moment that is NaN or infinite ([`ModelError::NonFinite`]).
    pub non_finite: Option<ModelError>,
}

/// Loads a checkpoint to run it and checks that its numbers are finite; the
/// caller decides whether a checkpoint with [`ForInference::non_finite`] is used.
/// A checkpoint of a run that averages its weights (`--ema`) is run with the
/// average: its `network` is the average, which is what the run validated
/// and tested (the trained weights are only needed to train on).
///
/// # Errors
/// The file cannot be read or is not a checkpoint of this program.
pub fn load_for_inference(path: &Path, device: Device) -> Result<ForInference, ModelError> {
    let mut checkpoint = checkpoint::load(path, device)?;
    let non_finite =
        checkpoint::check_finite(&checkpoint.network, &checkpoint.optimizer, checkpoint.ema.as_ref()).err();
    if let Some(ema) = checkpoint.ema.take() {
        checkpoint.network = ema.into_network();
    }
    Ok(ForInference { checkpoint, non_finite })
}
