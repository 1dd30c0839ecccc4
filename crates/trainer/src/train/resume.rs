//! Starting a run from where it stands: fresh, or resumed (from the
//! beginning when it has no checkpoint yet), with an explicit learning-rate
//! change, and `best` and `last` made to agree with the resumed state.

use std::sync::Arc;

use anyhow::{Context, Result};
use model::schedule::{Constant, LearningRate, StepPosition};
use runfiles::{LearningRateChange, RecipeChange};

use super::inventory::Inventory;
use super::options::{RunOptions, Start};
use super::recipe::{Recorded, check_resumed_recipe};
use super::state::{Opening, RunState};
use crate::console::report;
use crate::run_dir::{self, CheckpointFile, RunDir};

/// The state a run starts from, and what its `config.json` recorded: fresh,
/// or resumed (from the beginning, and said so, when the run has no
/// checkpoint yet, so a scheduler's job script can always pass `--resume`).
/// The network computes as the recipe says (`--fused-tail`, which a
/// checkpoint does not record): a resumed run as its `config.json` records
/// (checked against the flag when one was given), a new one as asked.
pub fn open_state(options: &RunOptions, opening: &Opening<'_>, dir: &RunDir) -> Result<(RunState, Recorded)> {
    let (mut state, recorded) = open_recorded_state(options, opening, dir)?;
    let fused = recorded.recipe.as_ref().map_or_else(|| options.fused_tail_of_a_new_run(), |recipe| recipe.fused_tail);
    state.network.set_fused_kernels(fused);
    Ok((state, recorded))
}

/// [`open_state`]'s state as it was saved.
fn open_recorded_state(options: &RunOptions, opening: &Opening<'_>, dir: &RunDir) -> Result<(RunState, Recorded)> {
    let Start::Resume { from, .. } = &options.start else {
        return Ok((RunState::fresh(options, opening.device)?, Recorded::default()));
    };
    if from.is_none() && opening.inventory.is_empty() {
        // Nothing to continue yet (a first attempt that ended before its first epoch did, or no attempt).
        report(&format!(
            "--resume: {} holds no checkpoint yet: starting the run from the beginning",
            dir.path().display()
        ));
        return Ok((RunState::fresh(options, opening.device)?, Recorded::default()));
    }
    let recorded = check_resumed_recipe(options, dir)?;
    Ok((RunState::resumed(options, opening, from.as_deref())?, recorded))
}

/// A run's learning rate over its steps, and the explicit changes that made it.
#[derive(Debug, Clone)]
pub struct RateHistory {
    /// The rate at every step: the recipe's schedule, then each change.
    pub timeline: LearningRate,
    /// Every change in force, oldest first (`config.json`'s `recipe_changes`).
    pub changes: Vec<RecipeChange>,
    /// The change this start made (`--override-learning-rate`), to record in `metrics.jsonl`.
    pub new_change: Option<RecipeChange>,
}

/// The recipe's schedule with the recorded changes the resumed state keeps
/// (those made before its step, as `metrics.jsonl` keeps them; later ones
/// went with the steps they came after) and this start's
/// `--override-learning-rate`: a constant rate from the state's step on, in
/// place of the schedule.
pub fn rate_history(options: &RunOptions, recorded: &Recorded, state: &RunState, n_steps: u64) -> RateHistory {
    let mut timeline = options.learning_rate_timeline();
    let mut changes: Vec<RecipeChange> = recorded.changes.iter().filter(|old| old.step < state.step).cloned().collect();
    for change in &changes {
        if let Some(rate) = &change.learning_rate {
            timeline.change_from(change.step, rate.to, Arc::new(Constant));
        }
    }
    let Start::Resume { new_learning_rate: Some(rate), .. } = options.start else {
        return RateHistory { timeline, changes, new_change: None };
    };
    let before = timeline.at(StepPosition { step: state.step, steps_per_epoch: n_steps });
    timeline.change_from(state.step, rate, Arc::new(Constant));
    report(&format!(
        "learning rate {before} -> {rate} from epoch {} (0-based), step {} of the run",
        state.epoch, state.step
    ));
    let change = RecipeChange {
        epoch: state.epoch,
        step: state.step,
        learning_rate: Some(LearningRateChange { from: before, to: rate }),
        extra: Default::default(),
    };
    changes.push(change.clone());
    RateHistory { timeline, changes, new_change: Some(change) }
}

/// Makes `best.safetensors` agree with the best epoch the resumed state
/// carries (they disagree when a run was killed after writing `net-{epoch}`
/// but before `best`): the state itself when it is that epoch's end, else
/// that epoch's numbered checkpoint; when neither exists any more, the best
/// file's own epoch becomes the truth. Either way it is said.
pub fn reconcile_best(options: &RunOptions, dir: &RunDir, inventory: &Inventory, state: &mut RunState) -> Result<()> {
    let best_path = dir.best_checkpoint();
    let in_file = inventory.meta(&best_path).and_then(|meta| meta.best_validation_accuracy);
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
        state.write_checkpoint(options, &best_path, state.epoch)?;
        tracing::warn!("rewrote {} from the resumed state (the end of epoch {best_epoch})", best_path.display());
        return Ok(());
    }
    let numbered = dir.checkpoint(CheckpointFile::Epoch(best_epoch));
    let numbered_holds_it = inventory.meta(&numbered).is_some_and(|meta| meta.epoch == best_epoch + 1);
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
pub fn reconcile_last(options: &RunOptions, dir: &RunDir, inventory: &Inventory, state: &RunState) -> Result<()> {
    let last = dir.last_checkpoint();
    let current = inventory.meta(&last).is_some_and(|meta| meta.step == state.step && meta.epoch == state.epoch);
    if !current && state.step > 0 {
        state.write_checkpoint(options, &last, state.epoch)?;
        tracing::info!(
            "rewrote {} from the resumed state (epoch {}, step {})",
            last.display(),
            state.epoch,
            state.step
        );
    }
    Ok(())
}
