//! What changes as a run trains: the network, its optimizer, the position in
//! the run and the epoch's sums so far. Starts fresh or from a checkpoint.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use model::{Adam, AdamConfig, CheckpointMeta, Ema, Network, checkpoint};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::inventory::Inventory;
use super::options::RunOptions;
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
    /// The moving average of its weights (`--ema`), which is what is evaluated.
    pub ema: Option<Ema>,
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
    pub fn fresh(options: &RunOptions, device: Device) -> Result<Self> {
        tch::manual_seed(streams::torch_seed(options.seed, Purpose::Init, 0));
        let network = Network::new(options.network.into(), device)?;
        let config = AdamConfig { learning_rate: options.learning_rate, ..AdamConfig::default() };
        let optimizer = Adam::new(&network.trainable(), config)?;
        let ema = options.ema.map(|decay| Ema::new(decay, &network)).transpose()?;
        let trainer = TrainerState::epoch_start(options.seed);
        Ok(Self { network, optimizer, ema, epoch: 0, step: 0, best: None, trainer })
    }

    /// The state to resume from: `from` (`--resume-from`), else the run's
    /// newest checkpoint that loads and belongs to this run (files that do
    /// not are reported and skipped; none usable is an error listing why).
    pub fn resumed(options: &RunOptions, run: &Opening<'_>, from: Option<&Path>) -> Result<Self> {
        if let Some(path) = from {
            return Self::from_checkpoint(options, path, run);
        }
        let (files, mut skipped) = run.inventory.newest_first();
        for path in files {
            match Self::from_checkpoint(options, path, run) {
                Ok(state) => return Ok(state),
                Err(error) => {
                    tracing::warn!("cannot resume from {}: {error:#}; trying the next newest", path.display());
                    skipped.push(format!("{error:#}"));
                }
            }
        }
        bail!("--resume: no checkpoint in {} can be resumed from:\n  {}", run.dir.display(), skipped.join("\n  "))
    }

    /// The state in one checkpoint file, checked against the options and the epoch's length.
    fn from_checkpoint(options: &RunOptions, path: &Path, run: &Opening<'_>) -> Result<Self> {
        let (device, n_steps) = (run.device, run.n_steps);
        let loaded = checkpoint::load(path, device)?;
        let bad = |reason: String| anyhow!("{}: {reason}", path.display());
        let wanted = model::Architecture::from(options.network);
        if loaded.network.architecture() != wanted {
            return Err(bad(format!(
                "holds the {} network, but --network is {}",
                loaded.network.architecture().name(),
                wanted.name()
            )));
        }
        let trainer: TrainerState = serde_json::from_str(&loaded.meta.trainer_state)
            .map_err(|error| bad(format!("metadata `trainer_state` is not the trainer's ({error})")))?;
        if trainer.seed != options.seed {
            return Err(bad(format!("was trained with --seed {}, not {}", trainer.seed, options.seed)));
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
        match (options.ema, loaded.ema.as_ref().map(Ema::decay)) {
            (Some(wanted), Some(held)) if wanted != held => {
                return Err(bad(format!("holds an average of the weights with decay {held}, but --ema is {wanted}")));
            }
            (Some(wanted), None) => {
                return Err(bad(format!("holds no average of the weights, but --ema is {wanted}")));
            }
            (None, Some(held)) => {
                return Err(bad(format!("holds an average of the weights (decay {held}), but --ema is not given")));
            }
            _ => {}
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
            ema: loaded.ema,
            epoch: loaded.meta.epoch,
            step: loaded.meta.step,
            best: loaded.meta.best_validation_accuracy,
            trainer,
        })
    }

    /// The network whose accuracy counts: the average of the weights when
    /// the run keeps one, else the trained network.
    pub fn evaluated_network(&self) -> &Network {
        self.ema.as_ref().map_or(&self.network, Ema::network)
    }

    /// Writes this state to the checkpoint `path`; `epoch` is the completed epochs.
    pub fn write_checkpoint(&self, options: &RunOptions, path: &Path, epoch: u64) -> Result<()> {
        let meta = self.checkpoint_meta(options, epoch)?;
        crate::run_dir::write_checkpoint(path, &self.network, &self.optimizer, self.ema.as_ref(), &meta)
    }

    /// The checkpoint metadata of this state; `epoch` is the completed epochs.
    pub fn checkpoint_meta(&self, options: &RunOptions, epoch: u64) -> Result<CheckpointMeta> {
        Ok(CheckpointMeta {
            epoch,
            step: self.step,
            best_validation_accuracy: self.best,
            trainer_state: serde_json::to_string(&self.trainer)?,
            dataset: crate::cli::dataset_meta(options.data.dataset),
        })
    }
}

/// What resuming needs to know of the run being opened.
#[derive(Debug)]
pub struct Opening<'a> {
    /// The run directory (for messages).
    pub dir: &'a Path,
    /// Its checkpoints, their headers read once.
    pub inventory: &'a Inventory,
    /// The device to load onto.
    pub device: Device,
    /// Steps in one epoch.
    pub n_steps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_beyond_the_epoch_is_refused_naming_the_field() {
        use clap::Parser;
        let args = crate::cli::Cli::try_parse_from(["trainer", "--resume"]).unwrap().train;
        let options = RunOptions::from_args(&args).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = crate::run_dir::RunDir::new(dir.path());
        let state = RunState::fresh(&options, Device::Cpu).unwrap();
        let resume = |run: &crate::run_dir::RunDir| {
            let inventory = Inventory::take(run).unwrap();
            let opening = Opening { dir: run.path(), inventory: &inventory, device: Device::Cpu, n_steps: 1100 };
            RunState::resumed(&options, &opening, None)
        };
        let trainer = TrainerState { step_in_epoch: 5000, ..TrainerState::epoch_start(options.seed) };
        let meta = model::CheckpointMeta {
            epoch: 1,
            step: 6100,
            best_validation_accuracy: None,
            trainer_state: serde_json::to_string(&trainer).unwrap(),
            dataset: model::DatasetMeta::default(),
        };
        checkpoint::save(&run.last_checkpoint(), &state.network, &state.optimizer, None, &meta).unwrap();
        let message = format!("{:#}", resume(&run).unwrap_err());
        assert!(message.contains("`trainer_state.step_in_epoch` is 5000, but an epoch has 1100 steps"), "{message}");
        assert!(message.contains("last.safetensors"), "{message}");

        // A stop right after the epoch's last step (before its evaluation) is a valid place to resume.
        let trainer = TrainerState { step_in_epoch: 1100, ..TrainerState::epoch_start(options.seed) };
        let meta = model::CheckpointMeta { trainer_state: serde_json::to_string(&trainer).unwrap(), ..meta };
        checkpoint::save(&run.last_checkpoint(), &state.network, &state.optimizer, None, &meta).unwrap();
        let resumed = resume(&run).unwrap();
        assert_eq!(resumed.trainer.step_in_epoch, 1100);
    }

    #[test]
    fn a_checkpoint_whose_weights_average_does_not_match_the_options_is_refused() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let args = ["trainer", "--resume"].iter().chain(extra).copied();
            RunOptions::from_args(&crate::cli::Cli::try_parse_from(args).unwrap().train).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let run = crate::run_dir::RunDir::new(dir.path());
        let resume = |options: &RunOptions| {
            let inventory = Inventory::take(&run).unwrap();
            let opening = Opening { dir: run.path(), inventory: &inventory, device: Device::Cpu, n_steps: 1100 };
            RunState::resumed(options, &opening, None).map(|state| state.ema.map(|ema| ema.decay()))
        };
        let averaged = parse(&["--ema", "0.99"]);
        let state = RunState::fresh(&averaged, Device::Cpu).unwrap();
        state.write_checkpoint(&averaged, &run.last_checkpoint(), 0).unwrap();
        assert_eq!(resume(&averaged).unwrap(), Some(0.99));
        for (options, expected) in [
            (parse(&[]), "holds an average of the weights (decay 0.99), but --ema is not given"),
            (parse(&["--ema", "0.9"]), "holds an average of the weights with decay 0.99, but --ema is 0.9"),
        ] {
            let message = format!("{:#}", resume(&options).unwrap_err());
            assert!(message.contains(expected), "{message}");
        }
        let plain = parse(&[]);
        RunState::fresh(&plain, Device::Cpu).unwrap().write_checkpoint(&plain, &run.last_checkpoint(), 0).unwrap();
        let message = format!("{:#}", resume(&averaged).unwrap_err());
        assert!(message.contains("holds no average of the weights, but --ema is 0.99"), "{message}");
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
