//! Training steps whose loss and correct answers are still on the device.
//! Reading a step's loss right after it makes the host wait for the device,
//! which on a GPU drains the queue of work the host has run ahead with; so
//! the steps' results are kept on the device and read together a few times a
//! second (one transfer), and at the end of an epoch or an interruption,
//! before anything is recorded. Folding them in step order keeps the epoch's
//! sums bit for bit those of reading every step, and a non-finite loss is
//! still reported with its exact step.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use model::StepOnDevice;

use super::state::TrainerState;

/// How often the kept results are read (and the loss checked).
const READ_INTERVAL: Duration = Duration::from_millis(200);
/// The most results kept before a read, whatever the time.
const MAX_PENDING: usize = 256;

/// Where a step was taken, for the error that names it.
#[derive(Debug, Clone, Copy)]
pub struct StepPosition {
    /// The epoch (0-based).
    pub epoch: u64,
    /// The step within the epoch (0-based).
    pub step_in_epoch: u64,
    /// Steps in an epoch.
    pub n_steps: u64,
    /// The step within the run (0-based).
    pub run_step: u64,
}

/// Steps taken but not read yet, oldest first.
#[derive(Debug)]
pub struct PendingSteps {
    positions: Vec<StepPosition>,
    steps: Vec<StepOnDevice>,
    last_read: Instant,
}

impl PendingSteps {
    /// None pending.
    pub fn new() -> Self {
        Self { positions: Vec::new(), steps: Vec::new(), last_read: Instant::now() }
    }

    /// Keeps a step's results.
    pub fn push(&mut self, position: StepPosition, step: StepOnDevice) {
        self.positions.push(position);
        self.steps.push(step);
    }

    /// Whether it is time to read: [`READ_INTERVAL`] since the last read, or
    /// [`MAX_PENDING`] steps kept.
    pub fn due(&self) -> bool {
        self.due_at(Instant::now())
    }

    fn due_at(&self, now: Instant) -> bool {
        let waited = now.saturating_duration_since(self.last_read);
        self.steps.len() >= MAX_PENDING || (!self.steps.is_empty() && waited >= READ_INTERVAL)
    }

    /// Reads every kept step (one transfer) and adds them, in order, to the
    /// epoch's sums in `trainer`. A loss that is not finite stops the run,
    /// naming its step.
    pub fn read_into(&mut self, trainer: &mut TrainerState) -> Result<()> {
        let results = StepOnDevice::read_all(&self.steps)?;
        self.steps.clear();
        self.last_read = Instant::now();
        for (position, result) in std::mem::take(&mut self.positions).into_iter().zip(results) {
            if !result.loss.is_finite() {
                bail!(
                    "the loss became {} at epoch {}, step {} of the epoch's {} (step {} of the run; all 0-based): \
                     training diverged; resume from the last checkpoint with a lower rate (--resume \
                     --override-learning-rate R), or start a new run with a lower --learning-rate",
                    result.loss,
                    position.epoch,
                    position.step_in_epoch,
                    position.n_steps,
                    position.run_step
                );
            }
            trainer.epoch_loss_sum += result.loss;
            trainer.epoch_n_correct += result.n_correct;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use model::{Adam, AdamConfig, Architecture, Network, Precision, train_step_on_device};
    use tch::{Device, Kind, Tensor};

    use super::*;

    fn position(step: u64) -> StepPosition {
        StepPosition { epoch: 3, step_in_epoch: step, n_steps: 1100, run_step: 3300 + step }
    }

    /// `n` steps on one batch, their results left on the device.
    fn steps(network: &Network, n: usize) -> Vec<StepOnDevice> {
        let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
        let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(10, [4], (Kind::Int64, Device::Cpu));
        let mut step = || train_step_on_device(network, &mut optimizer, &images, &labels, Precision::Float32).unwrap();
        (0..n).map(|_| step()).collect()
    }

    #[test]
    fn one_read_of_many_steps_sums_them_bit_for_bit_as_a_read_after_each() {
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let taken = steps(&network, 7);
        let mut one_by_one = TrainerState::epoch_start(0);
        for step in &taken {
            let result = StepOnDevice::read_all(std::slice::from_ref(step)).unwrap()[0];
            one_by_one.epoch_loss_sum += result.loss;
            one_by_one.epoch_n_correct += result.n_correct;
        }
        let mut pending = PendingSteps::new();
        assert!(!pending.due(), "nothing to read");
        for (index, step) in taken.into_iter().enumerate() {
            pending.push(position(index as u64), step);
        }
        let mut together = TrainerState::epoch_start(0);
        pending.read_into(&mut together).unwrap();
        assert_eq!(together.epoch_loss_sum.to_bits(), one_by_one.epoch_loss_sum.to_bits());
        assert_eq!(together.epoch_n_correct, one_by_one.epoch_n_correct);
        assert!(together.epoch_loss_sum > 0.0);
        assert!(!pending.due(), "read, so nothing is left");
    }

    #[test]
    fn a_non_finite_loss_is_reported_with_its_own_step() {
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let mut taken = steps(&network, 2);
        crate::fault::poison(&network);
        taken.extend(steps(&network, 3));
        let mut pending = PendingSteps::new();
        for (index, step) in taken.into_iter().enumerate() {
            pending.push(position(index as u64), step);
        }
        let mut trainer = TrainerState::epoch_start(0);
        let message = pending.read_into(&mut trainer).unwrap_err().to_string();
        assert!(
            message.starts_with("the loss became NaN at epoch 3, step 2 of the epoch's 1100 (step 3302 of the run"),
            "{message}"
        );
    }

    #[test]
    fn a_read_is_due_after_the_interval_or_when_many_are_kept() {
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let mut pending = PendingSteps::new();
        let just_before = pending.last_read + READ_INTERVAL - Duration::from_millis(1);
        assert!(!pending.due_at(pending.last_read + READ_INTERVAL), "nothing kept");
        let mut taken = steps(&network, MAX_PENDING).into_iter().enumerate();
        let (index, step) = taken.next().unwrap();
        pending.push(position(index as u64), step);
        assert!(!pending.due_at(just_before));
        assert!(pending.due_at(pending.last_read + READ_INTERVAL));
        for (index, step) in taken.by_ref().take(MAX_PENDING - 2) {
            pending.push(position(index as u64), step);
        }
        assert!(!pending.due_at(just_before), "{} kept", MAX_PENDING - 1);
        let (index, step) = taken.next().unwrap();
        pending.push(position(index as u64), step);
        assert!(pending.due_at(just_before), "{MAX_PENDING} kept");
        pending.read_into(&mut TrainerState::epoch_start(0)).unwrap();
        assert!(!pending.due_at(pending.last_read + READ_INTERVAL), "all read");
    }
}
