//! What changes as a run trains: the network, its optimizer, the position in
//! the run and the epoch's sums so far. Starts fresh or from a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
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
    pub fn fresh(args: &TrainArgs, device: Device) -> Result<Self> {
        tch::manual_seed(streams::torch_seed(args.seed, Purpose::Init, 0));
        let network = Network::new(args.network.into(), device)?;
        let config = AdamConfig { learning_rate: args.learning_rate, ..AdamConfig::default() };
        let optimizer = Adam::new(&network.trainable(), config)?;
        Ok(Self { network, optimizer, epoch: 0, step: 0, best: None, trainer: TrainerState::epoch_start(args.seed) })
    }

    /// The state to resume from: the `--resume-from` file, else the run's
    /// newest checkpoint that loads and belongs to this run (files that do
    /// not are reported and skipped; none usable is an error listing why).
    pub fn resumed(args: &TrainArgs, run: &RunDir, device: Device, n_steps: u64) -> Result<Self> {
        if let Some(path) = &args.resume_from {
            return Self::from_checkpoint(args, path, device, n_steps);
        }
        let files = run.checkpoints()?;
        let mut skipped = Vec::new();
        for path in newest_first(run, files, &mut skipped) {
            match Self::from_checkpoint(args, &path, device, n_steps) {
                Ok(state) => return Ok(state),
                Err(error) => {
                    tracing::warn!("cannot resume from {}: {error:#}; trying the next newest", path.display());
                    skipped.push(format!("{error:#}"));
                }
            }
        }
        bail!("--resume: no checkpoint in {} can be resumed from:\n  {}", run.path().display(), skipped.join("\n  "))
    }

    /// The state in one checkpoint file, checked against `args` and the epoch's length.
    fn from_checkpoint(args: &TrainArgs, path: &Path, device: Device, n_steps: u64) -> Result<Self> {
        let loaded = checkpoint::load(path, device)?;
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
        // `n_steps` itself is a stop after the epoch's last step, before its evaluation.
        if trainer.step_in_epoch > n_steps {
            return Err(bad(format!(
                "metadata `trainer_state.step_in_epoch` is {}, but an epoch has {n_steps} steps (0 to {n_steps})",
                trainer.step_in_epoch
            )));
        }
        if !(trainer.epoch_loss_sum.is_finite() && trainer.epoch_seconds.is_finite()) {
            return Err(bad("metadata `trainer_state` holds a number that is not finite".to_owned()));
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

/// The run's checkpoint files whose headers read, newest first (most
/// optimizer steps; `last` first on a tie). Files whose headers do not read
/// (stray, foreign or corrupt) are reported and left out.
fn newest_first(run: &RunDir, files: Vec<PathBuf>, skipped: &mut Vec<String>) -> Vec<PathBuf> {
    let mut readable: Vec<(u64, bool, PathBuf)> = Vec::new();
    for path in files {
        match checkpoint::read_meta(&path) {
            Ok((_, meta)) => readable.push((meta.step, path == run.last_checkpoint(), path)),
            Err(error) => {
                tracing::warn!("skipping {}: {error}", path.display());
                skipped.push(error.to_string());
            }
        }
    }
    readable.sort_by_key(|(step, is_last, _)| std::cmp::Reverse((*step, *is_last)));
    readable.into_iter().map(|(_, _, path)| path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_beyond_the_epoch_is_refused_naming_the_field() {
        use clap::Parser;
        let args = crate::cli::Cli::try_parse_from(["trainer", "--resume"]).unwrap().train;
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let state = RunState::fresh(&args, Device::Cpu).unwrap();
        let trainer = TrainerState { step_in_epoch: 5000, ..TrainerState::epoch_start(args.seed) };
        let meta = model::CheckpointMeta {
            epoch: 1,
            step: 6100,
            best_validation_accuracy: None,
            trainer_state: serde_json::to_string(&trainer).unwrap(),
            dataset: model::DatasetMeta::default(),
        };
        checkpoint::save(&run.last_checkpoint(), &state.network, &state.optimizer, &meta).unwrap();
        let message = format!("{:#}", RunState::resumed(&args, &run, Device::Cpu, 1100).unwrap_err());
        assert!(message.contains("`trainer_state.step_in_epoch` is 5000, but an epoch has 1100 steps"), "{message}");
        assert!(message.contains("last.safetensors"), "{message}");

        // A stop right after the epoch's last step (before its evaluation) is a valid place to resume.
        let trainer = TrainerState { step_in_epoch: 1100, ..TrainerState::epoch_start(args.seed) };
        let meta = model::CheckpointMeta { trainer_state: serde_json::to_string(&trainer).unwrap(), ..meta };
        checkpoint::save(&run.last_checkpoint(), &state.network, &state.optimizer, &meta).unwrap();
        let resumed = RunState::resumed(&args, &run, Device::Cpu, 1100).unwrap();
        assert_eq!(resumed.trainer.step_in_epoch, 1100);
    }

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
        // Sums of many losses, as a resumed epoch reads them back: every bit must survive
        // (serde_json's default float parser can be an ulp off; the soak found it).
        let mut sum = 0.0f64;
        for step in 0..100_000u32 {
            sum += 1.0 / f64::from(step + 3) + f64::from(step).sqrt() * 1e-3;
            let state = TrainerState { epoch_loss_sum: sum, epoch_seconds: sum / 7.0, ..state.clone() };
            let text = serde_json::to_string(&state).unwrap();
            let back: TrainerState = serde_json::from_str(&text).unwrap();
            assert_eq!(back.epoch_loss_sum.to_bits(), sum.to_bits(), "{text}");
            assert_eq!(back.epoch_seconds.to_bits(), (sum / 7.0).to_bits(), "{text}");
        }
    }
}
