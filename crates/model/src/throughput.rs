//! A network's cost per image measured on this machine: training steps and
//! evaluation on random images (the speed does not depend on the values),
//! timed after a warm-up. `trainer summary --measure` prints it next to the
//! counted FLOPs; `scripts/bench_step.py` is the side-by-side benchmark.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::{Adam, AdamConfig, Architecture, ModelError, Network, evaluate, train_step};

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Images per training step.
    pub batch_size: i64,
    /// Timed training steps (after as many untimed ones, at most 5).
    pub steps: usize,
    /// Images per evaluation batch; the evaluation reads `steps` of them.
    pub eval_batch_size: i64,
}

impl Default for Measurement {
    fn default() -> Self {
        Self { batch_size: 50, steps: 40, eval_batch_size: 500 }
    }
}

/// What a measurement found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Images per second in training steps (forward, backward and Adam).
    pub train_images_per_second: f64,
    /// Images per second in evaluation (forward only, batch norm folded).
    pub eval_images_per_second: f64,
}

impl Throughput {
    /// Microseconds per image in training.
    pub fn train_micros_per_image(&self) -> f64 {
        1e6 / self.train_images_per_second
    }

    /// Microseconds per image in evaluation.
    pub fn eval_micros_per_image(&self) -> f64 {
        1e6 / self.eval_images_per_second
    }
}

/// Times a freshly initialised `architecture` on `device` with libtorch's
/// current thread count.
///
/// # Examples
///
/// ```
/// use model::throughput::{Measurement, measure};
/// use model::Architecture;
///
/// let quick = Measurement { batch_size: 8, steps: 2, eval_batch_size: 16 };
/// let throughput = measure(Architecture::Vgg, tch::Device::Cpu, quick)?;
/// assert!(throughput.train_images_per_second > 0.0);
/// assert!(throughput.eval_micros_per_image() > 0.0);
/// # Ok::<(), model::ModelError>(())
/// ```
///
/// # Errors
/// [`ModelError::Libtorch`] when the device cannot hold or compute the steps.
pub fn measure(architecture: Architecture, device: Device, measurement: Measurement) -> Result<Throughput, ModelError> {
    let network = Network::new(architecture, device)?;
    let mut adam = Adam::new(&network.trainable(), AdamConfig::default())?;
    let images = Tensor::f_rand([measurement.batch_size, 28, 28], (Kind::Float, Device::Cpu))
        .map_err(ModelError::libtorch("drawing random images"))?;
    let labels = Tensor::f_randint(10, [measurement.batch_size], (Kind::Int64, Device::Cpu))
        .map_err(ModelError::libtorch("drawing random labels"))?;
    let warmup = measurement.steps.min(5);
    let train = timed(warmup, measurement.steps, || train_step(&network, &mut adam, &images, &labels).map(drop))?;
    let eval_images = measurement.eval_batch_size * measurement.steps as i64;
    let images = Tensor::f_rand([eval_images, 28, 28], (Kind::Float, Device::Cpu))
        .map_err(ModelError::libtorch("drawing random images"))?;
    let labels = Tensor::f_zeros([eval_images], (Kind::Int64, Device::Cpu))
        .map_err(ModelError::libtorch("allocating labels"))?;
    let batch = measurement.eval_batch_size as usize;
    let eval = timed(1, 1, || evaluate(&network, &images, &labels, batch).map(drop))?;
    let per_second = |images: f64, elapsed: Duration| images / elapsed.as_secs_f64().max(1e-9);
    Ok(Throughput {
        train_images_per_second: per_second((measurement.batch_size as usize * measurement.steps) as f64, train),
        eval_images_per_second: per_second(eval_images as f64, eval),
    })
}

/// Runs `work` `warmup` times untimed, then `repeats` times timed.
fn timed(
    warmup: usize,
    repeats: usize,
    mut work: impl FnMut() -> Result<(), ModelError>,
) -> Result<Duration, ModelError> {
    for _ in 0..warmup {
        work()?;
    }
    let start = Instant::now();
    for _ in 0..repeats {
        work()?;
    }
    Ok(start.elapsed())
}
