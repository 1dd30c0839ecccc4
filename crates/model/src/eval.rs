//! Training steps and evaluation in batches.

use tch::{Kind, Reduction, Tensor};

use crate::{Adam, ModelError, Network};

/// Exact counts over a set of images.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evaluation {
    /// Images classified correctly.
    pub n_correct: u64,
    /// Images evaluated.
    pub n_images: u64,
    /// Sum of the per-image cross-entropy losses.
    pub loss_sum: f64,
}

impl Evaluation {
    /// `n_correct / n_images` (NaN for no images).
    pub fn accuracy(&self) -> f64 {
        self.n_correct as f64 / self.n_images as f64
    }

    /// Mean cross-entropy loss per image (NaN for no images).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.n_images as f64
    }
}

fn check_images(images: &Tensor) -> Result<i64, ModelError> {
    let image_shape = images.size();
    let per_image: i64 = image_shape.iter().skip(1).product();
    if image_shape.is_empty() || per_image != 28 * 28 {
        return Err(ModelError::Shape(format!(
            "images of shape {image_shape:?}: expected [N, 28, 28] or [N, 1, 28, 28]"
        )));
    }
    Ok(image_shape[0])
}

fn check_inputs(images: &Tensor, labels: &Tensor) -> Result<i64, ModelError> {
    let n_images = check_images(images)?;
    let label_shape = labels.size();
    if label_shape != [n_images] {
        return Err(ModelError::Shape(format!(
            "{n_images} images (shape {:?}) but labels of shape {label_shape:?}",
            images.size()
        )));
    }
    Ok(n_images)
}

/// Evaluates `images` (`[N, 28, 28]`, any device) against `labels` (`[N]`,
/// integer classes) in evaluation mode, without gradients, `batch_size`
/// images at a time: every image is counted exactly once, and memory does not
/// grow with `N` (only one batch is on the network's device at a time).
pub fn evaluate(
    network: &Network,
    images: &Tensor,
    labels: &Tensor,
    batch_size: usize,
) -> Result<Evaluation, ModelError> {
    let n_images = check_inputs(images, labels)?;
    if batch_size == 0 {
        return Err(ModelError::Shape("evaluation batch size 0".to_owned()));
    }
    let device = network.device();
    let mut evaluation = Evaluation::default();
    tch::no_grad(|| {
        let mut start = 0;
        while start < n_images {
            let length = (batch_size as i64).min(n_images - start);
            let batch_images = images.narrow(0, start, length).to_device(device).to_kind(Kind::Float);
            let batch_labels = labels.narrow(0, start, length).to_device(device).to_kind(Kind::Int64);
            let logits = network.forward(&batch_images, false);
            let loss_sum = logits.cross_entropy_loss::<Tensor>(&batch_labels, None, Reduction::Sum, -100, 0.0);
            let n_correct = logits.argmax(-1, false).eq_tensor(&batch_labels).sum(Kind::Int64);
            evaluation.loss_sum += loss_sum.double_value(&[]);
            evaluation.n_correct += n_correct.int64_value(&[]) as u64;
            evaluation.n_images += length as u64;
            start += length;
        }
    });
    Ok(evaluation)
}

/// Runs `images` (`[N, 28, 28]`, any device) through the network in
/// evaluation mode without gradients, `batch_size` at a time (one batch on
/// the network's device at once), handing each batch's logits to `use_logits`.
fn for_each_batch(
    network: &Network,
    images: &Tensor,
    batch_size: usize,
    mut use_logits: impl FnMut(Tensor) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let n_images = check_images(images)?;
    if batch_size == 0 {
        return Err(ModelError::Shape("evaluation batch size 0".to_owned()));
    }
    let device = network.device();
    tch::no_grad(|| {
        let mut start = 0;
        while start < n_images {
            let length = (batch_size as i64).min(n_images - start);
            let batch_images = images.narrow(0, start, length).to_device(device).to_kind(Kind::Float);
            use_logits(network.forward(&batch_images, false))?;
            start += length;
        }
        Ok(())
    })
}

/// The predicted class (argmax of the logits) of every image of `images`
/// (`[N, 28, 28]`, any device), in evaluation mode, `batch_size` at a time.
pub fn predict(network: &Network, images: &Tensor, batch_size: usize) -> Result<Vec<i64>, ModelError> {
    let mut predictions = Vec::new();
    for_each_batch(network, images, batch_size, |logits| {
        let classes = logits.argmax(-1, false).to_device(tch::Device::Cpu);
        predictions.extend(Vec::<i64>::try_from(classes).map_err(|error| ModelError::Tensor(error.to_string()))?);
        Ok(())
    })?;
    Ok(predictions)
}

/// The class probabilities (softmax of the logits) of every image of
/// `images` (`[N, 28, 28]`, any device), in evaluation mode, `batch_size` at
/// a time: `N` rows of [`crate::network::N_CLASSES`] values that sum to 1.
///
/// ```
/// use model::{Architecture, Network, probabilities};
/// use tch::{Device, Kind, Tensor};
///
/// let network = Network::new(Architecture::Intended, Device::Cpu);
/// let images = Tensor::zeros([3, 28, 28], (Kind::Float, Device::Cpu));
/// let rows = probabilities(&network, &images, 2).unwrap();
/// assert_eq!(rows.len(), 3);
/// assert!((rows[0].iter().sum::<f32>() - 1.0).abs() < 1e-5);
/// ```
pub fn probabilities(network: &Network, images: &Tensor, batch_size: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut rows = Vec::new();
    for_each_batch(network, images, batch_size, |logits| {
        let batch = logits.softmax(-1, Kind::Float).to_device(tch::Device::Cpu);
        let values =
            Vec::<f32>::try_from(batch.flatten(0, -1)).map_err(|error| ModelError::Tensor(error.to_string()))?;
        rows.extend(values.chunks(crate::network::N_CLASSES as usize).map(<[f32]>::to_vec));
        Ok(())
    })?;
    Ok(rows)
}

/// What one training step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    /// Mean cross-entropy loss of the batch, from the step's own forward pass.
    pub loss: f64,
    /// Images of the batch the network classified correctly (training mode, before the update).
    pub n_correct: u64,
}

/// One optimizer step on a batch: a single forward pass in training mode
/// (which also updates the batch-norm moving averages once), backward, Adam.
pub fn train_step(
    network: &Network,
    optimizer: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
) -> Result<StepResult, ModelError> {
    check_inputs(images, labels)?;
    let device = network.device();
    let images = images.to_device(device).to_kind(Kind::Float);
    let labels = labels.to_device(device).to_kind(Kind::Int64);
    let parameters = network.trainable();
    Adam::zero_grad(&parameters);
    let logits = network.forward(&images, true);
    let loss = logits.cross_entropy_for_logits(&labels);
    loss.backward();
    optimizer.step(&parameters)?;
    let n_correct = tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&labels).sum(Kind::Int64).int64_value(&[]));
    Ok(StepResult { loss: loss.double_value(&[]), n_correct: n_correct as u64 })
}
