//! Starting a run from where it stands: fresh, or resumed (from the
//! beginning when it has no checkpoint yet), with an explicit learning-rate
//! change, and `best` and `last` made to agree with the resumed state.

use anyhow::{Context, Result};
use model::checkpoint;
use runfiles::{LearningRateChange, RecipeChange};
use tch::Device;

use super::recipe::{Recorded, check_resumed_recipe};
use super::state::RunState;
use crate::cli::TrainArgs;
use crate::console::report;
use crate::run_dir::{self, CheckpointFile, RunDir};

/// The state a run starts from, and what its `config.json` recorded: fresh,
/// or resumed (from the beginning, and said so, when the run has no
/// checkpoint yet, so a scheduler's job script can always pass `--resume`).
pub fn open_state(args: &TrainArgs, dir: &RunDir, device: Device, n_steps: u64) -> Result<(RunState, Recorded)> {
    if !args.resuming() {
        return Ok((RunState::fresh(args, device)?, Recorded::default()));
    }
    if args.resume_from.is_none() && dir.checkpoints()?.is_empty() {
        // Nothing to continue yet (a first attempt that ended before its first epoch did, or no attempt).
        report(&format!(
            "--resume: {} holds no checkpoint yet: starting the run from the beginning",
            dir.path().display()
        ));
        return Ok((RunState::fresh(args, device)?, Recorded::default()));
    }
    let recorded = check_resumed_recipe(args, dir)?;
    Ok((RunState::resumed(args, dir, device, n_steps)?, recorded))
}

/// Applies `--override-learning-rate` to a resumed state; returns the change
/// to record (`recipe_change`), with where in the run it was made.
pub fn override_learning_rate(args: &TrainArgs, state: &mut RunState) -> Option<RecipeChange> {
    let rate = args.override_learning_rate?;
    let before = state.optimizer.config.learning_rate;
    state.optimizer.config.learning_rate = rate;
    report(&format!(
        "learning rate {before} -> {rate} from epoch {} (0-based), step {} of the run",
        state.epoch, state.step
    ));
    Some(RecipeChange {
        epoch: state.epoch,
        step: state.step,
        learning_rate: Some(LearningRateChange { from: before, to: rate }),
        extra: Default::default(),
    })
}

/// Makes `best.safetensors` agree with the best epoch the resumed state
/// carries (they disagree when a run was killed after writing `net-{epoch}`
/// but before `best`): the state itself when it is that epoch's end, else
/// that epoch's numbered checkpoint; when neither exists any more, the best
/// file's own epoch becomes the truth. Either way it is said.
pub fn reconcile_best(args: &TrainArgs, dir: &RunDir, state: &mut RunState) -> Result<()> {
    let best_path = dir.best_checkpoint();
    let in_file = checkpoint::read_meta(&best_path).ok().and_then(|(_, meta)| meta.best_validation_accuracy);
    let (Some((_, best_epoch)), file_epoch) = (state.best, in_file.map(|(_, epoch)| epoch)) else {
        return Ok(());
    };
    if file_epoch == Some(best_epoch) {
        return Ok(());
    }
    tracing::warn!(
        "{} holds best epoch {file_epoch:?}, but the resumed state's best epoch is {best_epoch}: re-establishing one truth",
        best_path.display()
    );
    if state.trainer.step_in_epoch == 0 && state.epoch == best_epoch + 1 {
        let meta = state.checkpoint_meta(args, state.epoch)?;
        run_dir::write_checkpoint(&best_path, &state.network, &state.optimizer, &meta)?;
        tracing::warn!("rewrote {} from the resumed state (the end of epoch {best_epoch})", best_path.display());
        return Ok(());
    }
    let numbered = dir.checkpoint(CheckpointFile::Epoch(best_epoch));
    let numbered_holds_it = checkpoint::read_meta(&numbered).is_ok_and(|(_, meta)| meta.epoch == best_epoch + 1);
    if numbered_holds_it {
        let bytes = std::fs::read(&numbered).with_context(|| format!("cannot read {}", numbered.display()))?;
        run_dir::write_atomically(&best_path, &bytes)?;
        tracing::warn!("copied {} to {}", numbered.display(), best_path.display());
        return Ok(());
    }
    state.best = in_file;
    tracing::warn!(
        "no checkpoint of epoch {best_epoch} is left: the best is now what {} holds ({file_epoch:?})",
        best_path.display()
    );
    Ok(())
}

/// Makes `last.safetensors` the resumed state when it is not (the run
/// resumed from a numbered checkpoint, after a kill before `last` was written
/// or by `--resume-from`): `last` is always the run's newest state.
pub fn reconcile_last(args: &TrainArgs, dir: &RunDir, state: &RunState) -> Result<()> {
    let last = dir.last_checkpoint();
    let current =
        checkpoint::read_meta(&last).is_ok_and(|(_, meta)| meta.step == state.step && meta.epoch == state.epoch);
    if !current && state.step > 0 {
        let meta = state.checkpoint_meta(args, state.epoch)?;
        run_dir::write_checkpoint(&last, &state.network, &state.optimizer, &meta)?;
        tracing::info!(
            "rewrote {} from the resumed state (epoch {}, step {})",
            last.display(),
            state.epoch,
            state.step
        );
    }
    Ok(())
}
