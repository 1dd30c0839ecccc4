//! What evaluation, prediction, the report, the web app and export run:
//! something that maps a batch of images to class scores. The network is
//! one; an ensemble (the log of its members' mean probabilities) would be
//! another, with nothing else changed.

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

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;
    use crate::{Architecture, probabilities};

    /// A classifier as an ensemble would be one: the log of its members' mean probabilities.
    struct MeanOf(Vec<Network>);

    impl Classifier for MeanOf {
        fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
            let mut sum = Tensor::zeros([images.size()[0], 10], (Kind::Float, Device::Cpu));
            for member in &self.0 {
                sum += member.logits(images)?.softmax(-1, Kind::Float);
            }
            Ok((sum / self.0.len() as f64).log())
        }
        fn device(&self) -> Device {
            Device::Cpu
        }
        fn detached(&self) -> Result<Box<dyn Classifier>, ModelError> {
            let members = self.0.iter().map(Network::detached_copy).collect::<Result<_, _>>()?;
            Ok(Box::new(MeanOf(members)))
        }
    }

    #[test]
    fn anything_that_gives_scores_is_evaluated_like_the_network() {
        tch::manual_seed(3);
        let members: Vec<Network> =
            (0..2).map(|_| Network::new(Architecture::Intended, Device::Cpu).unwrap()).collect();
        let images = Tensor::rand([6, 28, 28], (Kind::Float, Device::Cpu));
        let each: Vec<Vec<Vec<f32>>> =
            members.iter().map(|member| probabilities(member, &images, 4).unwrap()).collect();
        let ensemble = MeanOf(members);
        let rows = probabilities(&ensemble, &images, 4).unwrap();
        for (index, row) in rows.iter().enumerate() {
            for class in 0..10 {
                let mean = (each[0][index][class] + each[1][index][class]) / 2.0;
                assert!((row[class] - mean).abs() < 1e-5, "image {index}, class {class}: {} vs {mean}", row[class]);
            }
        }
        let copy = ensemble.detached().unwrap();
        assert_eq!(probabilities(copy.as_ref(), &images, 6).unwrap(), rows);
    }
}
