//! What changes as a run trains: the network, its optimizer, the position in
//! the run and the epoch's sums so far. Starts fresh or from a checkpoint.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use model::{Adam, AdamConfig, CheckpointMeta, Network, checkpoint};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::cli::TrainArgs;
use crate::run_dir::RunDir;
use crate::streams::{self, Purpose};

/// The trainer's own state in a checkpoint (`trainer_state`, as JSON): where
/// in the epoch the run stopped and what the epoch had summed so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The run's seed.
    pub seed: u64,
    /// Steps of the current epoch already taken (0 at an epoch's end).
    pub step_in_epoch: u64,
    /// Sum of the step losses of the current epoch so far.
    pub epoch_loss_sum: f64,
    /// Training images classified correctly (training mode) in the current epoch so far.
    pub epoch_n_correct: u64,
    /// Seconds spent training in the current epoch so far.
    pub epoch_seconds: f64,
}

impl TrainerState {
    /// The state at the start of an epoch.
    pub fn epoch_start(seed: u64) -> Self {
        Self { seed, step_in_epoch: 0, epoch_loss_sum: 0.0, epoch_n_correct: 0, epoch_seconds: 0.0 }
    }
}

/// The run's changing state.
#[derive(Debug)]
pub struct RunState {
    /// The network being trained.
    pub network: Network,
    /// Its optimizer.
    pub optimizer: Adam,
    /// Completed epochs.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The best validation accuracy so far and its 0-based epoch.
    pub best: Option<(f64, u64)>,
    /// The position in the current epoch.
    pub trainer: TrainerState,
}

impl RunState {
    /// A fresh network (initialised from the seed) and optimizer.
    pub fn fresh(args: &TrainArgs, device: Device) -> Self {
        tch::manual_seed(streams::torch_seed(args.seed, Purpose::Init, 0));
        let network = Network::new(args.network.into(), device);
        let config = AdamConfig { learning_rate: args.learning_rate, ..AdamConfig::default() };
        let optimizer = Adam::new(&network.trainable(), config);
        Self { network, optimizer, epoch: 0, step: 0, best: None, trainer: TrainerState::epoch_start(args.seed) }
    }

    /// The state of the run's newest checkpoint, checked against `args`.
    pub fn resumed(args: &TrainArgs, run: &RunDir, device: Device) -> Result<Self> {
        let path = newest_checkpoint(run)?;
        let loaded = checkpoint::load(&path, device)?;
        let bad = |reason: String| anyhow!("{}: {reason}", path.display());
        let wanted = model::Architecture::from(args.network);
        if loaded.network.architecture() != wanted {
            return Err(bad(format!(
                "holds the {} network, but --network is {}",
                loaded.network.architecture().name(),
                wanted.name()
            )));
        }
        let trainer: TrainerState = serde_json::from_str(&loaded.meta.trainer_state)
            .map_err(|error| bad(format!("metadata `trainer_state` is not the trainer's ({error})")))?;
        if trainer.seed != args.seed {
            return Err(bad(format!("was trained with --seed {}, not {}", trainer.seed, args.seed)));
        }
        tracing::info!(
            "resuming from {} (epoch {}, step {} of the run)",
            path.display(),
            loaded.meta.epoch,
            loaded.meta.step
        );
        Ok(Self {
            network: loaded.network,
            optimizer: loaded.optimizer,
            epoch: loaded.meta.epoch,
            step: loaded.meta.step,
            best: loaded.meta.best_validation_accuracy,
            trainer,
        })
    }

    /// The checkpoint metadata of this state; `epoch` is the completed epochs.
    pub fn checkpoint_meta(&self, args: &TrainArgs, epoch: u64) -> Result<CheckpointMeta> {
        Ok(CheckpointMeta {
            epoch,
            step: self.step,
            best_validation_accuracy: self.best,
            trainer_state: serde_json::to_string(&self.trainer)?,
            dataset: args.data.dataset.meta(),
        })
    }
}

/// The newest checkpoint of the run (most optimizer steps; `last` on a tie).
fn newest_checkpoint(run: &RunDir) -> Result<PathBuf> {
    let mut newest: Option<(u64, bool, PathBuf)> = None;
    for path in run.checkpoints()? {
        let (_, meta) = checkpoint::read_meta(&path)?;
        let key = (meta.step, path == run.last_checkpoint());
        if newest.as_ref().is_none_or(|(step, is_last, _)| key > (*step, *is_last)) {
            newest = Some((key.0, key.1, path));
        }
    }
    newest.map(|(_, _, path)| path).context("no checkpoint to resume from")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainer_state_round_trips_exactly_through_json() {
        let state = TrainerState {
            seed: 3,
            step_in_epoch: 17,
            epoch_loss_sum: 0.1 + 0.2,
            epoch_n_correct: 800,
            epoch_seconds: 1.0 / 3.0,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<TrainerState>(&text).unwrap(), state);
    }
}
