//! `trainer train`: the seed's loop with its defects fixed (`docs/SEED.md`),
//! as a run with named phases over a small state:
//!
//! - [`Run::open`]: settings checked, data loaded, the state fresh or resumed,
//!   `config.json` written and the records of redone epochs dropped;
//! - [`Run::train_epoch`]: the steps of one epoch, on batches augmented ahead
//!   on another thread, stopping after a step when asked to;
//! - [`Run::end_epoch`]: train-sample and validation accuracy, the epoch's
//!   record, and the checkpoints the [`policy`] says;
//! - [`Run::finish`]: the best checkpoint restored and tested.

mod inventory;
mod options;
mod pending;
mod policy;
mod recipe;
mod resume;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use augment::Augmenter;
use idx::mnist::{Mnist, Split};
use model::{Evaluation, ModelError, checkpoint, evaluate, train_step_on_device};
use runfiles::{EpochRecord, RecipeChange, Record, State, Status, TestRecord};
use serde_json::json;
use tch::{Device, Tensor};

use self::inventory::Inventory;
use self::options::RunOptions;
use self::pending::{PendingSteps, StepPosition};
use self::policy::CheckpointPolicy;
use self::recipe::Places;
pub use self::recipe::{TCH_VERSION, default_recipe};
use self::resume::{RateHistory, open_state, rate_history, reconcile_best, reconcile_last};
use self::state::{Opening, RunState, TrainerState};
use crate::cli::TrainArgs;
use crate::console::{self, EpochProgress, report};
use crate::data;
use crate::fault;
use crate::pipeline::{Batch, EpochBatches, EpochPlan};
use crate::run_dir::{self, CheckpointFile, RunDir, RunLock};
use crate::streams::{self, Purpose};

/// Trains as `args` say; `stop` is raised by a signal (`crate::signals`).
/// Once the run is open, how the attempt ends is recorded in `status.json`.
pub fn run(args: &TrainArgs, stop: &AtomicBool) -> Result<()> {
    // Before the first tensor: a step's speed must not depend on the heap's layout (`model::allocator`).
    let heap = model::allocator::keep_freed_memory();
    tracing::debug!("{heap}");
    let mut run = Run::open(RunOptions::from_args(args)?)?;
    run.record_status(State::Running, None);
    let ending = run.train_until_done(stop);
    match &ending {
        Ok(state) => run.record_status(*state, None),
        Err(error) => run.record_status(State::Failed, Some(format!("{error:#}"))),
    }
    ending.map(|_| ())
}

impl Run {
    /// Writes `status.json`: where this attempt stands, on which host and
    /// process. A failure to write it is said, not fatal: it only informs views.
    fn record_status(&self, state: State, message: Option<String>) {
        let status = Status {
            state,
            message,
            host: runfiles::this_host(),
            pid: Some(std::process::id()),
            epoch: self.state.epoch,
            step: self.state.step,
        };
        let written = serde_json::to_vec_pretty(&status)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| run_dir::write_atomically(&self.dir.status_path(), &bytes));
        if let Err(error) = written {
            tracing::warn!("{error:#}");
        }
    }

    /// Trains the remaining epochs and tests the best, or stops when asked.
    fn train_until_done(&mut self, stop: &AtomicBool) -> Result<State> {
        while self.state.epoch < self.options.epochs {
            if let Some(best_epoch) = self.patience_exhausted() {
                report(&format!(
                    "stopping early after epoch {}: the validation accuracy has not improved since epoch {} \
                     (--patience {})",
                    self.state.epoch,
                    best_epoch + 1,
                    self.options.patience.unwrap_or_default()
                ));
                break;
            }
            match self.train_epoch(stop)? {
                EpochEnd::Completed => self.end_epoch()?,
                EpochEnd::Interrupted => {
                    self.save_interrupted()?;
                    return Ok(State::Stopped);
                }
                EpochEnd::NotStarted => {
                    report(&format!("interrupted; resume with: {}", resume_command()));
                    return Ok(State::Stopped);
                }
            }
        }
        self.finish()?;
        Ok(State::Finished)
    }

    /// The best epoch (0-based), once `--patience` epochs have passed
    /// since it without a better validation accuracy. A function of the
    /// state alone, so a resumed run stops where the uninterrupted one did.
    fn patience_exhausted(&self) -> Option<u64> {
        let (_, best_epoch) = self.state.best?;
        let waited = self.state.epoch.saturating_sub(best_epoch + 1);
        (waited >= self.options.patience?).then_some(best_epoch)
    }
}

/// How [`Run::train_epoch`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EpochEnd {
    /// Every step was taken.
    Completed,
    /// Asked to stop after a step, mid-epoch.
    Interrupted,
    /// Asked to stop before the epoch began (the last epoch's files are complete).
    NotStarted,
}

/// The data of a run, loaded once.
struct RunData {
    /// The training images (`--train-images` applied).
    train: Arc<Split>,
    /// The validation images and labels, on the device.
    validation: (Tensor, Tensor),
    /// The test images, tested once at the end.
    test: Split,
    /// Steps per epoch (full batches only, as the seed).
    n_steps: u64,
}

impl RunData {
    fn load(options: &RunOptions, device: Device) -> Result<Self> {
        let started = Instant::now();
        let Mnist { train, validation, test } = data::load(&options.data)?;
        let name = options.data.dataset.name;
        data::check_image_size(&format!("{name} train"), &train)?;
        let train = data::first_training_images(train, options.train_images)?;
        ensure!(
            options.batch_size <= train.len(),
            "--batch-size {} is larger than the {} training images: not one full batch",
            options.batch_size,
            train.len()
        );
        tracing::info!(
            "data: {} training, {} validation, {} test images ({:.2} s)",
            train.len(),
            validation.len(),
            test.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            n_steps: (train.len() / options.batch_size) as u64,
            validation: data::split_tensors(&validation, None, device)?,
            train: Arc::new(train),
            test,
        })
    }
}

/// A training run: its options, directory, data and changing state.
struct Run {
    options: RunOptions,
    dir: RunDir,
    /// The run directory's writer lock, held for the whole run.
    _lock: RunLock,
    device: Device,
    data: RunData,
    state: RunState,
    /// The learning rate of every step: the schedule and its recorded changes.
    learning_rate: model::schedule::LearningRate,
    policy: CheckpointPolicy,
    augmenter: Augmenter,
    /// The augmentation pool when `--augment-threads` is above 1.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// When the seed's periodic report was last printed.
    display_timer: Instant,
}

impl Run {
    /// Checks the directory, loads the data, starts fresh or resumes, and
    /// writes `config.json`: nothing is written before every check has passed.
    fn open(options: RunOptions) -> Result<Self> {
        let dir = RunDir::new(&options.save_dir);
        // A second writer on an existing run stops here, before touching anything.
        let early_lock = if dir.path().is_dir() { Some(dir.lock()?) } else { None };
        dir.check(options.resuming())?;
        let device = configure_device(&options)?;
        let data = RunData::load(&options, device)?;
        let inventory = if options.resuming() { Inventory::take(&dir)? } else { Inventory::default() };
        let opening = Opening { dir: dir.path(), inventory: &inventory, device, n_steps: data.n_steps };
        let (mut state, recorded) = open_state(&options, &opening, &dir)?;
        tracing::debug!("trainable variables:\n{}", state.network.variable_listing());
        dir.create()?;
        let lock = match early_lock {
            Some(lock) => lock,
            None => dir.lock()?,
        };
        for removed in dir.remove_temporaries()? {
            tracing::info!("removed {}, left by a killed run", removed.display());
        }
        let rates = rate_history(&options, &recorded, &state, data.n_steps);
        if options.resuming() {
            reconcile_best(&options, &dir, &inventory, &mut state)?;
            reconcile_last(&options, &dir, &inventory, &state)?;
        }
        let recipe = recorded.recipe.unwrap_or_else(|| options.recipe());
        write_config(&options, &dir, device, &data, &state, (&recipe, &rates))?;
        restart_records(&dir, &state, rates.new_change.as_ref())?;
        Ok(Self {
            dir,
            _lock: lock,
            device,
            data,
            state,
            learning_rate: rates.timeline,
            policy: options.policy,
            augmenter: Augmenter::new(options.augment.clone(), options.seed),
            pool: augmentation_pool(options.machine.augment_threads)?,
            display_timer: Instant::now(),
            options,
        })
    }

    /// Trains the current epoch from where its state says, until its last
    /// step or until `stop` is raised (checked after every step).
    fn train_epoch(&mut self, stop: &AtomicBool) -> Result<EpochEnd> {
        if stop.load(Ordering::SeqCst) {
            return Ok(EpochEnd::NotStarted);
        }
        let (epoch, n_steps) = (self.state.epoch, self.data.n_steps);
        let first_step = self.state.trainer.step_in_epoch;
        let plan = EpochPlan {
            epoch,
            order: Arc::new(streams::epoch_order(self.options.seed, epoch, self.data.train.len())),
            batch_size: self.options.batch_size,
            first_step,
            n_steps,
        };
        let batches = EpochBatches::spawn(
            self.data.train.clone(),
            self.augmenter.clone(),
            self.pool.clone(),
            plan,
            self.options.machine.prefetch,
        );
        let label = format!("epoch {}/{}", epoch + 1, self.options.epochs);
        let mut progress = EpochProgress::start(label, n_steps, first_step);
        let seconds_before = self.state.trainer.epoch_seconds;
        let mut pending = PendingSteps::new();
        let mean_loss_so_far = |trainer: &TrainerState| {
            (trainer.step_in_epoch > 0).then(|| trainer.epoch_loss_sum / trainer.step_in_epoch as f64)
        };
        // A resumed epoch's mean so far, until the first read.
        let mut mean_loss = mean_loss_so_far(&self.state.trainer);
        for batch in batches {
            let batch = batch.with_context(|| format!("augmenting a batch of epoch {epoch}"))?;
            self.step(&batch, &mut pending)?;
            if pending.due() {
                pending.read_into(&mut self.state.trainer)?;
                mean_loss = mean_loss_so_far(&self.state.trainer);
            }
            let trainer = &mut self.state.trainer;
            let elapsed = progress.elapsed().as_secs_f64();
            trainer.epoch_seconds = seconds_before + elapsed;
            let images_per_second =
                ((trainer.step_in_epoch - first_step) * self.options.batch_size as u64) as f64 / elapsed;
            progress.update(trainer.step_in_epoch, images_per_second, mean_loss);
            if stop.load(Ordering::SeqCst) {
                // The sums of the checkpoint about to be written must hold every step.
                pending.read_into(&mut self.state.trainer)?;
                return Ok(EpochEnd::Interrupted);
            }
        }
        pending.read_into(&mut self.state.trainer)?;
        ensure!(
            self.state.trainer.step_in_epoch == n_steps,
            "epoch {epoch} ended after {} of {n_steps} steps: the augmentation thread stopped",
            self.state.trainer.step_in_epoch
        );
        if fault::reach(fault::Point::AfterEpoch) == Some(fault::Action::Nan) {
            fault::poison(&self.state.network);
        }
        self.check_finite()?;
        Ok(EpochEnd::Completed)
    }

    /// One optimizer step on `batch`, its loss and correct answers kept on
    /// the device in `pending` (read a few times a second, see [`pending`]).
    fn step(&mut self, batch: &Batch, pending: &mut PendingSteps) -> Result<()> {
        let side = model::network::IMAGE_SIDE;
        let images = Tensor::from_slice(&batch.images).view([self.options.batch_size as i64, side, side]);
        let labels = Tensor::from_slice(&batch.labels);
        // Dropout's randomness depends on the step alone: resumable without libtorch's generator state.
        tch::manual_seed(streams::torch_seed(self.options.seed, Purpose::Dropout, self.state.step));
        // The schedule (with its recorded changes) is the only source of the optimizer's rate.
        let at = model::schedule::StepPosition { step: self.state.step, steps_per_epoch: self.data.n_steps };
        self.state.optimizer.config.learning_rate = self.learning_rate.at(at);
        let precision = self.options.precision.into();
        let (network, optimizer) = (&self.state.network, &mut self.state.optimizer);
        let result = train_step_on_device(network, optimizer, &images, &labels, precision)?;
        if let Some(ema) = &mut self.state.ema {
            ema.update(&self.state.network, self.state.step)?;
        }
        let position = StepPosition {
            epoch: self.state.epoch,
            step_in_epoch: batch.step_in_epoch,
            n_steps: self.data.n_steps,
            run_step: self.state.step,
        };
        pending.push(position, result);
        self.state.step += 1;
        self.state.trainer.step_in_epoch += 1;
        Ok(())
    }

    /// Stops the run if any weight, moving average or optimizer moment is
    /// not finite: no checkpoint is written, so the last good ones stay.
    fn check_finite(&self) -> Result<()> {
        match checkpoint::check_finite(&self.state.network, &self.state.optimizer, self.state.ema.as_ref()) {
            Ok(()) => Ok(()),
            Err(ModelError::NonFinite { tensor }) => {
                let rate = self.state.optimizer.config.learning_rate;
                bail!(
                    "after epoch {} (0-based), step {} of the run, tensor `{tensor}` holds NaN or infinite values: \
                     training diverged. No checkpoint was written, so the last good ones are untouched; resume \
                     from the newest with a lower learning rate: {} --override-learning-rate {}",
                    self.state.epoch,
                    self.state.step,
                    resume_command(),
                    rate / 10.0
                )
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Saves the mid-epoch state to `last` and says how to resume.
    fn save_interrupted(&self) -> Result<()> {
        self.check_finite()?;
        let path = self.dir.checkpoint(self.policy.on_interrupt());
        self.state.write_checkpoint(&self.options, &path, self.state.epoch)?;
        report(&format!(
            "interrupted at epoch {} (0-based), step {} of {}: state saved to {}",
            self.state.epoch,
            self.state.trainer.step_in_epoch,
            self.data.n_steps,
            path.display()
        ));
        report(&format!("resume with: {}", resume_command()));
        Ok(())
    }

    /// Evaluates the finished epoch, records it, and writes its checkpoints.
    fn end_epoch(&mut self) -> Result<()> {
        let epoch = self.state.epoch;
        let evaluated = Instant::now();
        let (train_evaluation, validation_evaluation) = self.evaluate_epoch()?;
        let validation_accuracy = validation_evaluation.accuracy();
        let improved = self.state.best.is_none_or(|(best, _)| validation_accuracy > best);
        if improved {
            self.state.best = Some((validation_accuracy, epoch));
        }
        let record = self.epoch_record(&train_evaluation, &validation_evaluation, evaluated);
        self.print_epoch(&record);
        run_dir::append_line(&self.dir.metrics_path(), &Record::Epoch(record).to_value())?;
        self.state.trainer = TrainerState::epoch_start(self.options.seed);
        self.state.epoch += 1;
        self.save_epoch_checkpoints(epoch, improved)
    }

    /// Accuracy on this epoch's random sample of training images, and on the validation images.
    fn evaluate_epoch(&self) -> Result<(Evaluation, Evaluation)> {
        let options = &self.options;
        let sample =
            streams::train_sample(options.seed, self.state.epoch, self.data.train.len(), options.train_accuracy_images);
        let (sample_images, sample_labels) = data::split_tensors(&self.data.train, Some(&sample), self.device)?;
        let network = self.state.evaluated_network();
        let train = evaluate(network, &sample_images, &sample_labels, options.eval_batch_size)?;
        let (validation_images, validation_labels) = &self.data.validation;
        let validation = evaluate(network, validation_images, validation_labels, options.eval_batch_size)?;
        Ok((train, validation))
    }

    /// The epoch's line of `metrics.jsonl`.
    fn epoch_record(&self, train: &Evaluation, validation: &Evaluation, evaluated: Instant) -> EpochRecord {
        let trainer = &self.state.trainer;
        let n_steps = self.data.n_steps;
        let n_images_trained = n_steps * self.options.batch_size as u64;
        EpochRecord {
            epoch: self.state.epoch,
            loss: trainer.epoch_loss_sum / n_steps as f64,
            train_batch_accuracy: Some(trainer.epoch_n_correct as f64 / n_images_trained as f64),
            train_accuracy: Some(train.accuracy()),
            validation_accuracy: validation.accuracy(),
            validation_loss: Some(validation.mean_loss()),
            validation_n_correct: Some(validation.n_correct),
            best_epoch: self.state.best.map(|(_, best_epoch)| best_epoch),
            step: Some(self.state.step),
            seconds: Some(trainer.epoch_seconds + evaluated.elapsed().as_secs_f64()),
            train_seconds: Some(trainer.epoch_seconds),
            images_per_second: Some(n_images_trained as f64 / trainer.epoch_seconds),
            learning_rate: Some(self.state.optimizer.config.learning_rate),
            extra: Default::default(),
        }
    }

    /// The epoch in the log, and the seed's report every `--display-step` epochs.
    fn print_epoch(&mut self, record: &EpochRecord) {
        let number = |value: Option<f64>| value.unwrap_or(f64::NAN);
        let (epoch, epochs) = (self.state.epoch + 1, self.options.epochs);
        let (loss, train_accuracy, validation_accuracy) =
            (record.loss, number(record.train_accuracy), record.validation_accuracy);
        tracing::info!(
            "epoch {epoch}/{epochs}: cost {loss:.6}, train accuracy {train_accuracy:.5}, validation accuracy \
             {validation_accuracy:.5}, {:.1} s training, {:.0} images/s",
            number(record.train_seconds),
            number(record.images_per_second)
        );
        if epoch % self.options.display_step == 0 {
            report(&format!("time spent is {:.1} s", self.display_timer.elapsed().as_secs_f64()));
            self.display_timer = Instant::now();
            report(&format!("Epoch: {epoch:03}/{epochs:03} cost: {loss:.9}"));
            report(&format!(" TRAIN ACCURACY: {train_accuracy:.5}"));
            report(&format!(" VALIDATION ACCURACY: {validation_accuracy:.5}"));
        }
    }

    /// Writes the checkpoints the policy names for the end of 0-based `epoch`.
    fn save_epoch_checkpoints(&self, epoch: u64, improved: bool) -> Result<()> {
        for file in self.policy.at_epoch_end(epoch, improved) {
            let path = self.dir.checkpoint(file);
            self.state.write_checkpoint(&self.options, &path, self.state.epoch)?;
            match file {
                CheckpointFile::Epoch(_) => {
                    report(&format!(" [{}] SAVED.", path.display()));
                    for removed in self.dir.prune(self.policy.keep)? {
                        tracing::info!("removed {} (--keep {})", removed.display(), self.policy.keep);
                    }
                    fault::reach(fault::Point::AfterEpochCheckpoint);
                }
                CheckpointFile::Best => {
                    report(&console::red(&format!(" BEST EPOCH UPDATED!! [{epoch}] "), console::use_color()));
                }
                CheckpointFile::Last => {}
            }
        }
        Ok(())
    }

    /// Restores the best checkpoint, tests it, and records the result.
    fn finish(&self) -> Result<()> {
        report("OPTIMIZATION FINISHED");
        let best_path = self.dir.best_checkpoint();
        report(&format!("LOADING [{}]", best_path.display()));
        let best = checkpoint::load(&best_path, self.device)?;
        let named = best.meta.best_validation_accuracy.map(|(_, epoch)| epoch);
        let recorded = self.state.best.map(|(_, epoch)| epoch);
        ensure!(
            named == recorded,
            "{} holds best epoch {named:?}, but the run's records say {recorded:?}: not testing another network \
             than the records name",
            best_path.display()
        );
        let (test_images, test_labels) = data::split_tensors(&self.data.test, None, self.device)?;
        // The average of the weights when the run keeps one: what was validated.
        let tested = best.ema.as_ref().map_or(&best.network, model::Ema::network);
        let test = evaluate(tested, &test_images, &test_labels, self.options.eval_batch_size)?;
        report(&format!("TEST ACCURACY: {:.5}", test.accuracy()));
        let record = TestRecord {
            accuracy: test.accuracy(),
            n_correct: Some(test.n_correct),
            n_images: Some(test.n_images),
            loss: Some(test.mean_loss()),
            checkpoint: Some(run_dir::BEST_FILE.to_owned()),
            best_epoch: best.meta.best_validation_accuracy.map(|(_, epoch)| epoch),
            best_validation_accuracy: best.meta.best_validation_accuracy.map(|(accuracy, _)| accuracy),
            extra: Default::default(),
        };
        run_dir::append_line(&self.dir.metrics_path(), &Record::Test(record).to_value())
    }
}

/// Sets libtorch's threads and resolves the device.
fn configure_device(options: &RunOptions) -> Result<Device> {
    tch::set_num_threads(options.machine.threads as i32);
    let device = options.machine.device.resolve()?;
    model::Precision::from(options.precision).check_native(device).context("--precision")?;
    tracing::info!("device: {}", model::device::describe(device));
    Ok(device)
}

/// A rayon pool for more than one augmentation thread; with one, the
/// producer thread augments by itself (see `pipeline`).
fn augmentation_pool(augment_threads: usize) -> Result<Option<Arc<rayon::ThreadPool>>> {
    if augment_threads <= 1 {
        return Ok(None);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(augment_threads)
        .thread_name(|index| format!("augment-{index}"))
        .build()
        .context("cannot start the augmentation threads")?;
    Ok(Some(Arc::new(pool)))
}

/// Writes `config.json`: the program, the machine, the recipe the run was
/// started with and its explicit changes, the settings (paths relative to
/// the run or the repository) and the model's size.
fn write_config(
    options: &RunOptions,
    dir: &RunDir,
    device: Device,
    data: &RunData,
    state: &RunState,
    (recipe, rates): (&runfiles::Recipe, &RateHistory),
) -> Result<()> {
    let batch_size = options.batch_size as u64;
    let model_summary = model::Architecture::from(options.network).summary();
    tracing::info!("{}", crate::summary::totals_line(&model_summary, batch_size));
    let places = Places { run: dir, command: std::env::args().collect() };
    let data_dir = options.data.data_dir.join(options.data.dataset.name);
    let config = json!({
        "program": "trainer",
        "version": env!("CARGO_PKG_VERSION"),
        "tch": TCH_VERSION,
        "libtorch": env!("LIBTORCH_VERSION"),
        "device": model::device::describe(device),
        "threads": options.machine.threads,
        "recipe": recipe,
        "recipe_changes": rates.changes,
        "settings": recipe::portable_settings(options, &places),
        "data": {
            "dir": recipe::portable_path(&data_dir, dir.path()),
            "n_train": data.train.len(),
            "n_validation": data.validation.1.size()[0],
            "n_test": data.test.len(),
        },
        "steps_per_epoch": data.n_steps,
        "network_trainable_values": state.network.n_trainable_values(),
        "model": crate::summary::totals_json(&model_summary, batch_size),
        "command": recipe::portable_command(&places),
    });
    run_dir::write_atomically(&dir.config_path(), serde_json::to_string_pretty(&config)?.as_bytes())
}

/// Keeps the records of the epochs a resumed run does not redo (none for a
/// fresh run), then records this start's recipe change, if any.
fn restart_records(dir: &RunDir, state: &RunState, change: Option<&RecipeChange>) -> Result<()> {
    let kept = run_dir::read_metrics_before(&dir.metrics_path(), state.epoch, state.step)?;
    let text: String = kept.iter().map(|record| format!("{}\n", record.to_line())).collect();
    run_dir::write_atomically(&dir.metrics_path(), text.as_bytes())?;
    match change {
        Some(change) => run_dir::append_line(&dir.metrics_path(), &Record::RecipeChange(change.clone()).to_value()),
        None => Ok(()),
    }
}

/// The command that resumes this run: this one with `--resume` (a sweep's
/// task always resumes: the same command).
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args()
        .map(|word| if word.contains(char::is_whitespace) { format!("'{word}'") } else { word })
        .collect();
    let sweep_task = words.windows(2).any(|pair| pair[0] == "sweep" && pair[1] == "task");
    if !sweep_task && !words.iter().any(|word| word == "--resume") {
        words.push("--resume".to_owned());
    }
    words.join(" ")
}
