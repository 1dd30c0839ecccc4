//! Training steps and evaluation in batches.

use tch::{Kind, Reduction, Tensor};

use crate::network::check_image_shape;
use crate::{Adam, Classifier, ModelError, Network, Precision};

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

fn check_inputs(images: &Tensor, labels: &Tensor) -> Result<i64, ModelError> {
    let n_images = check_image_shape(images)?;
    let label_shape = labels.size();
    if label_shape != [n_images] {
        return Err(ModelError::LabelShape { n_images, found: label_shape });
    }
    Ok(n_images)
}

fn check_batch_size(what: &'static str, batch_size: usize) -> Result<i64, ModelError> {
    match i64::try_from(batch_size) {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(ModelError::BatchSize { what, found: batch_size }),
    }
}

/// Images `start..start + length` of `images` on `device`, as floats.
fn batch_on(images: &Tensor, start: i64, length: i64, device: tch::Device) -> Result<Tensor, ModelError> {
    images
        .f_narrow(0, start, length)
        .and_then(|batch| batch.f_to_device(device))
        .and_then(|batch| batch.f_to_kind(Kind::Float))
        .map_err(ModelError::libtorch("moving a batch of images to the network's device"))
}

/// Evaluates `images` (`[N, 28, 28]`, any device) against `labels` (`[N]`,
/// integer classes) in evaluation mode, without gradients, `batch_size`
/// images at a time: every image is counted exactly once, and memory does not
/// grow with `N` (only one batch is on the network's device at a time).
///
/// # Examples
///
/// ```
/// use model::{Architecture, Network, evaluate};
/// use tch::{Device, Kind, Tensor};
///
/// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
/// let images = Tensor::rand([10, 28, 28], (Kind::Float, Device::Cpu));
/// let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
/// let evaluation = evaluate(&network, &images, &labels, 4)?;
/// assert_eq!(evaluation.n_images, 10);
/// assert!((0.0..=1.0).contains(&evaluation.accuracy()));
/// # Ok::<(), model::ModelError>(())
/// ```
pub fn evaluate(
    classifier: &dyn Classifier,
    images: &Tensor,
    labels: &Tensor,
    batch_size: usize,
) -> Result<Evaluation, ModelError> {
    let n_images = check_inputs(images, labels)?;
    let batch_size = check_batch_size("evaluation", batch_size)?;
    let device = classifier.device();
    // Each batch's sums stay on the device until the end: one host sync per pass.
    let mut pending = Vec::new();
    tch::no_grad(|| {
        let mut start = 0;
        while start < n_images {
            let length = batch_size.min(n_images - start);
            let batch_images = batch_on(images, start, length, device)?;
            let batch_labels = labels
                .f_narrow(0, start, length)
                .and_then(|batch| batch.f_to_device(device))
                .and_then(|batch| batch.f_to_kind(Kind::Int64))
                .map_err(ModelError::libtorch("moving a batch of labels to the network's device"))?;
            let logits = classifier.logits(&batch_images)?;
            let counted = (|| {
                let loss_sum = logits.f_cross_entropy_loss::<Tensor>(&batch_labels, None, Reduction::Sum, -100, 0.0)?;
                let n_correct = logits.f_argmax(-1, false)?.f_eq_tensor(&batch_labels)?.f_sum(Kind::Int64)?;
                Ok::<_, tch::TchError>((loss_sum, n_correct))
            })()
            .map_err(ModelError::libtorch("counting a batch's loss and correct answers"))?;
            pending.push(counted);
            start += length;
        }
        Ok::<_, ModelError>(())
    })?;
    let pairs: Vec<(&Tensor, &Tensor)> = pending.iter().map(|(loss_sum, n_correct)| (loss_sum, n_correct)).collect();
    let (loss_sums, counts) = read_pairs(&pairs).map_err(ModelError::libtorch("reading the evaluation's sums"))?;
    // Summed on the host in batch order, as when each batch was read at once.
    let mut evaluation = Evaluation { n_images: n_images as u64, ..Evaluation::default() };
    for (loss_sum, n_correct) in loss_sums.iter().zip(counts) {
        evaluation.loss_sum += loss_sum;
        evaluation.n_correct += n_correct as u64;
    }
    Ok(evaluation)
}

/// Pairs of 0-d tensors on one device (a float, a count), copied to the host
/// in one transfer as float64 (exact for fp32 values, and for counts below 2^53).
fn read_pairs(pairs: &[(&Tensor, &Tensor)]) -> Result<(Vec<f64>, Vec<f64>), tch::TchError> {
    if pairs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    tch::no_grad(|| {
        let firsts = Tensor::f_stack(&pairs.iter().map(|pair| pair.0).collect::<Vec<_>>(), 0)?;
        let seconds = Tensor::f_stack(&pairs.iter().map(|pair| pair.1).collect::<Vec<_>>(), 0)?;
        let both = Tensor::f_cat(&[firsts.f_to_kind(Kind::Double)?, seconds.f_to_kind(Kind::Double)?], 0)?;
        let mut values = Vec::<f64>::try_from(both.f_to_device(tch::Device::Cpu)?)?;
        let seconds = values.split_off(pairs.len());
        Ok((values, seconds))
    })
}

/// Runs `images` (`[N, 28, 28]`, any device) through the network in
/// evaluation mode without gradients, `batch_size` at a time (one batch on
/// the network's device at once), handing each batch's logits to `use_logits`.
fn for_each_batch(
    classifier: &dyn Classifier,
    images: &Tensor,
    batch_size: usize,
    mut use_logits: impl FnMut(Tensor) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let n_images = check_image_shape(images)?;
    let batch_size = check_batch_size("prediction", batch_size)?;
    let device = classifier.device();
    tch::no_grad(|| {
        let mut start = 0;
        while start < n_images {
            let length = batch_size.min(n_images - start);
            use_logits(classifier.logits(&batch_on(images, start, length, device)?)?)?;
            start += length;
        }
        Ok(())
    })
}

/// The predicted class (argmax of the logits) of every image of `images`
/// (`[N, 28, 28]`, any device), in evaluation mode, `batch_size` at a time.
pub fn predict(classifier: &dyn Classifier, images: &Tensor, batch_size: usize) -> Result<Vec<i64>, ModelError> {
    let mut predictions = Vec::new();
    for_each_batch(classifier, images, batch_size, |logits| {
        let classes = logits
            .f_argmax(-1, false)
            .and_then(|classes| classes.f_to_device(tch::Device::Cpu))
            .and_then(Vec::<i64>::try_from)
            .map_err(ModelError::libtorch("reading the predicted classes"))?;
        predictions.extend(classes);
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
/// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
/// let images = Tensor::zeros([3, 28, 28], (Kind::Float, Device::Cpu));
/// let rows = probabilities(&network, &images, 2).unwrap();
/// assert_eq!(rows.len(), 3);
/// assert!((rows[0].iter().sum::<f32>() - 1.0).abs() < 1e-5);
/// ```
pub fn probabilities(
    classifier: &dyn Classifier,
    images: &Tensor,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut rows = Vec::new();
    for_each_batch(classifier, images, batch_size, |logits| {
        let values = logits
            .f_softmax(-1, Kind::Float)
            .and_then(|batch| batch.f_to_device(tch::Device::Cpu))
            .and_then(|batch| batch.f_flatten(0, -1))
            .and_then(Vec::<f32>::try_from)
            .map_err(ModelError::libtorch("reading the class probabilities"))?;
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
///
/// # Examples
///
/// ```
/// use model::{Adam, AdamConfig, Architecture, Network, train_step};
/// use tch::{Device, Kind, Tensor};
///
/// tch::manual_seed(0);
/// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
/// let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
/// let images = Tensor::rand([8, 28, 28], (Kind::Float, Device::Cpu));
/// let labels = Tensor::from_slice(&[3i64; 8]);
/// let first = train_step(&network, &mut optimizer, &images, &labels)?;
/// for _ in 0..5 {
///     train_step(&network, &mut optimizer, &images, &labels)?;
/// }
/// // Six steps on one batch fit it better.
/// assert!(train_step(&network, &mut optimizer, &images, &labels)?.loss < first.loss);
/// assert_eq!(optimizer.step_count(), 7);
/// # Ok::<(), model::ModelError>(())
/// ```
pub fn train_step(
    network: &Network,
    optimizer: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
) -> Result<StepResult, ModelError> {
    train_step_in(network, optimizer, images, labels, Precision::Float32)
}

/// [`train_step`] with its forward and backward passes computed in
/// `precision` (the weights, the optimizer and the loss stay fp32). Check
/// [`Precision::check_native`] first: bf16 on a CPU without native bf16
/// works, but slowly.
///
/// # Examples
///
/// ```
/// use model::{Adam, AdamConfig, Architecture, Network, Precision, train_step_in};
/// use tch::{Device, Kind, Tensor};
///
/// tch::manual_seed(0);
/// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
/// let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
/// let images = Tensor::rand([8, 28, 28], (Kind::Float, Device::Cpu));
/// let labels = Tensor::from_slice(&[3i64; 8]);
/// let first = train_step_in(&network, &mut optimizer, &images, &labels, Precision::BFloat16)?;
/// for _ in 0..5 {
///     train_step_in(&network, &mut optimizer, &images, &labels, Precision::BFloat16)?;
/// }
/// assert!(train_step_in(&network, &mut optimizer, &images, &labels, Precision::BFloat16)?.loss < first.loss);
/// // The weights stay fp32.
/// assert!(network.trainable().iter().all(|weight| weight.kind() == Kind::Float));
/// # Ok::<(), model::ModelError>(())
/// ```
pub fn train_step_in(
    network: &Network,
    optimizer: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
    precision: Precision,
) -> Result<StepResult, ModelError> {
    let step = train_step_on_device(network, optimizer, images, labels, precision)?;
    let read = StepOnDevice::read_all(std::slice::from_ref(&step))?;
    Ok(read[0])
}

/// A training step's results still on the network's device: reading them
/// waits for the step to finish, which on a GPU stalls the queue of work the
/// host has run ahead with. Keep them, and read many at once with
/// [`StepOnDevice::read_all`].
#[derive(Debug)]
pub struct StepOnDevice {
    /// The mean loss, a 0-d fp32 tensor (detached).
    loss: Tensor,
    /// The correct answers, a 0-d int64 tensor.
    n_correct: Tensor,
}

impl StepOnDevice {
    /// The results of `steps`, in order, read from the device in one
    /// transfer (one host sync for all of them). The values are exactly
    /// those [`train_step_in`] reads one by one.
    ///
    /// # Examples
    ///
    /// ```
    /// use model::{Adam, AdamConfig, Architecture, Network, Precision, StepOnDevice, train_step_on_device};
    /// use tch::{Device, Kind, Tensor};
    ///
    /// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    /// let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    /// let images = Tensor::rand([8, 28, 28], (Kind::Float, Device::Cpu));
    /// let labels = Tensor::from_slice(&[3i64; 8]);
    /// let mut pending = Vec::new();
    /// for _ in 0..3 {
    ///     pending.push(train_step_on_device(&network, &mut optimizer, &images, &labels, Precision::Float32)?);
    /// }
    /// let results = StepOnDevice::read_all(&pending)?;
    /// assert_eq!(results.len(), 3);
    /// assert!(results.iter().all(|step| step.loss.is_finite() && step.n_correct <= 8));
    /// # Ok::<(), model::ModelError>(())
    /// ```
    pub fn read_all(steps: &[StepOnDevice]) -> Result<Vec<StepResult>, ModelError> {
        let pairs: Vec<(&Tensor, &Tensor)> = steps.iter().map(|step| (&step.loss, &step.n_correct)).collect();
        let (losses, counts) =
            read_pairs(&pairs).map_err(ModelError::libtorch("reading training steps' losses and correct answers"))?;
        Ok(losses
            .iter()
            .zip(counts)
            .map(|(&loss, n_correct)| StepResult { loss, n_correct: n_correct as u64 })
            .collect())
    }
}

/// [`train_step_in`] without reading its results: nothing waits for the
/// device, so on a GPU the host can queue the next steps while this one runs.
pub fn train_step_on_device(
    network: &Network,
    optimizer: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
    precision: Precision,
) -> Result<StepOnDevice, ModelError> {
    check_inputs(images, labels)?;
    let device = network.device();
    let moved = images
        .f_to_device(device)
        .and_then(|images| images.f_to_kind(Kind::Float))
        .and_then(|images| Ok((images, labels.f_to_device(device)?.f_to_kind(Kind::Int64)?)));
    let (images, labels) = moved.map_err(ModelError::libtorch("moving a training batch to the network's device"))?;
    let parameters = network.trainable();
    // bf16 on the CPU computes with the optimizer's bf16 copies of the dense weights (`crate::shadow`).
    let shadows = match precision {
        Precision::BFloat16 => optimizer.bf16_shadow_copies(&parameters)?,
        Precision::Float32 => Vec::new(),
    };
    Adam::zero_grad(&parameters)?;
    let logits = network.forward_train_with_shadows(&images, precision, &shadows)?;
    // log_softmax then nll_loss, as tch's `cross_entropy_for_logits` (the results the tests pin).
    let loss = logits
        .f_log_softmax(-1, Kind::Float)
        .and_then(|log_probabilities| log_probabilities.f_nll_loss::<Tensor>(&labels, None, Reduction::Mean, -100))
        .map_err(ModelError::libtorch("computing the loss"))?;
    loss.f_backward().map_err(ModelError::libtorch("backward pass"))?;
    optimizer.step(&parameters)?;
    let n_correct = tch::no_grad(|| logits.f_argmax(-1, false)?.f_eq_tensor(&labels)?.f_sum(Kind::Int64))
        .map_err(ModelError::libtorch("counting the step's correct answers"))?;
    let loss = loss.f_detach().map_err(ModelError::libtorch("detaching the step's loss"))?;
    Ok(StepOnDevice { loss, n_correct })
}
