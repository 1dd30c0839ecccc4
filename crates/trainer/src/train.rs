//! `trainer train`: the seed's loop with its defects fixed (see SPEC.md).
//!
//! One forward pass per step; validation on every image every epoch; the best
//! epoch always saved and restored for the test; augmentation on its own
//! thread, ahead of training; resumable from any checkpoint, exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use augment::Augmenter;
use idx::mnist::{Mnist, Split};
use model::{Adam, AdamConfig, CheckpointMeta, Evaluation, Network, checkpoint, evaluate, train_step};
use ndarray::s;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tch::{Device, Tensor};

use crate::cli::TrainArgs;
use crate::console::{self, EpochProgress, report};
use crate::data_info::split_tensors;
use crate::pipeline::{EpochBatches, EpochPlan};
use crate::run_dir::{self, RunDir};
use crate::streams::{self, Purpose};

/// The `tch` this program is built with (checked against Cargo.toml by a test).
pub const TCH_VERSION: &str = "0.24.0";

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

/// Everything that must stay the same for a resumed run to continue the
/// same run: compared with `config.json` on `--resume`.
fn recipe(args: &TrainArgs) -> Value {
    json!({
        "dataset": args.data.dataset,
        "validation_size": args.data.validation_size,
        "train_images": args.train_images,
        "network": args.network,
        "augment": args.augment,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "train_accuracy_images": args.train_accuracy_images,
    })
}

/// Rejects impossible settings before any work is done.
pub fn validate(args: &TrainArgs) -> Result<()> {
    let positive = [
        ("--epochs", args.epochs as usize),
        ("--batch-size", args.batch_size),
        ("--display-step", args.display_step as usize),
        ("--save-step", args.save_step as usize),
        ("--keep", args.keep),
        ("--eval-batch-size", args.eval_batch_size),
        ("--augment-threads", args.augment_threads),
        ("--prefetch", args.prefetch),
        ("--train-accuracy-images", args.train_accuracy_images),
        ("--validation-size", args.data.validation_size),
        ("--threads", args.threads.unwrap_or(1)),
        ("--train-images", args.train_images.unwrap_or(1)),
    ];
    for (flag, value) in positive {
        ensure!(value > 0, "{flag} must be at least 1, found 0");
    }
    ensure!(
        args.learning_rate.is_finite() && args.learning_rate > 0.0,
        "--learning-rate must be a positive number, found {}",
        args.learning_rate
    );
    Ok(())
}

/// Where the run starts: a fresh network, or the newest checkpoint.
struct Start {
    network: Network,
    optimizer: Adam,
    /// Completed epochs.
    epoch: u64,
    /// Optimizer steps taken.
    step: u64,
    best: Option<(f64, u64)>,
    state: TrainerState,
}

fn fresh_start(args: &TrainArgs, device: Device) -> Start {
    tch::manual_seed(streams::torch_seed(args.seed, Purpose::Init, 0));
    let network = Network::new(args.network.into(), device);
    let config = AdamConfig { learning_rate: args.learning_rate, ..AdamConfig::default() };
    let optimizer = Adam::new(&network.trainable(), config);
    let state =
        TrainerState { seed: args.seed, step_in_epoch: 0, epoch_loss_sum: 0.0, epoch_n_correct: 0, epoch_seconds: 0.0 };
    Start { network, optimizer, epoch: 0, step: 0, best: None, state }
}

/// The newest checkpoint of the run (most optimizer steps; `last` on a tie).
fn newest_checkpoint(run: &RunDir) -> Result<std::path::PathBuf> {
    let mut newest: Option<(u64, bool, std::path::PathBuf)> = None;
    for path in run.checkpoints()? {
        let (_, meta) = checkpoint::read_meta(&path)?;
        let key = (meta.step, path == run.last_checkpoint());
        if newest.as_ref().is_none_or(|(step, is_last, _)| key > (*step, *is_last)) {
            newest = Some((key.0, key.1, path));
        }
    }
    newest.map(|(_, _, path)| path).context("no checkpoint to resume from")
}

fn resume_start(args: &TrainArgs, run: &RunDir, device: Device) -> Result<Start> {
    // The recipe must be the one the run was started with.
    match std::fs::read_to_string(run.config_path()) {
        Ok(text) => {
            let config: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", run.config_path().display()))?;
            let recipe = recipe(args);
            for (key, value) in recipe.as_object().into_iter().flatten() {
                let recorded = &config["recipe"][key];
                if recorded != value {
                    bail!(
                        "--resume: the run in {} was started with {key} = {recorded}, but this command gives {value}; \
                         pass the run's value (or start a new run with another --save-dir)",
                        run.path().display()
                    );
                }
            }
        }
        Err(error) => tracing::warn!("{}: {error}; cannot check the settings match", run.config_path().display()),
    }
    let path = newest_checkpoint(run)?;
    let loaded = checkpoint::load(&path, device)?;
    let bad = |reason: String| anyhow::anyhow!("{}: {reason}", path.display());
    if loaded.network.architecture() != model::Architecture::from(args.network) {
        return Err(bad(format!(
            "holds the {} network, but --network is {}",
            loaded.network.architecture().name(),
            model::Architecture::from(args.network).name()
        )));
    }
    let state: TrainerState = serde_json::from_str(&loaded.meta.trainer_state)
        .map_err(|error| bad(format!("metadata `trainer_state` is not the trainer's ({error})")))?;
    if state.seed != args.seed {
        return Err(bad(format!("was trained with --seed {}, not {}", state.seed, args.seed)));
    }
    tracing::info!(
        "resuming from {} (epoch {}, step {} of the run)",
        path.display(),
        loaded.meta.epoch,
        loaded.meta.step
    );
    Ok(Start {
        network: loaded.network,
        optimizer: loaded.optimizer,
        epoch: loaded.meta.epoch,
        step: loaded.meta.step,
        best: loaded.meta.best_validation_accuracy,
        state,
    })
}

/// The command that resumes this run: this one with `--resume`.
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args()
        .map(|word| if word.contains(char::is_whitespace) { format!("'{word}'") } else { word })
        .collect();
    if !words.iter().any(|word| word == "--resume") {
        words.push("--resume".to_owned());
    }
    words.join(" ")
}

fn checkpoint_meta(
    args: &TrainArgs,
    epoch: u64,
    step: u64,
    best: Option<(f64, u64)>,
    state: &TrainerState,
) -> Result<CheckpointMeta> {
    Ok(CheckpointMeta {
        epoch,
        step,
        best_validation_accuracy: best,
        trainer_state: serde_json::to_string(state)?,
        dataset: args.data.dataset.meta(),
    })
}

fn evaluation_json(evaluation: &Evaluation) -> Value {
    json!({
        "accuracy": evaluation.accuracy(),
        "n_correct": evaluation.n_correct,
        "n_images": evaluation.n_images,
        "loss": evaluation.mean_loss(),
    })
}

/// Trains as `args` say; `stop` is raised by Ctrl-C.
pub fn run(args: &TrainArgs, stop: &AtomicBool) -> Result<()> {
    validate(args)?;
    let run = RunDir::new(&args.save_dir);
    run.check(args.resume)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    tch::set_num_threads(threads as i32);
    let device = args.device.resolve()?;
    let device_name = model::device::describe(device);
    tracing::info!("device: {device_name}");

    let load_start = Instant::now();
    let Mnist { train, validation, test } = crate::data_info::load(&args.data)?;
    let train = match args.train_images {
        Some(limit) if limit > train.len() => {
            bail!("--train-images {limit} is more than the {} training images", train.len())
        }
        Some(limit) => Split {
            images: train.images.slice(s![..limit, .., ..]).to_owned(),
            labels: train.labels.slice(s![..limit]).to_owned(),
        },
        None => train,
    };
    ensure!(
        args.batch_size <= train.len(),
        "--batch-size {} is larger than the {} training images: not one full batch",
        args.batch_size,
        train.len()
    );
    let (n_train, (rows, cols)) = (train.len(), train.image_size());
    let n_steps = (n_train / args.batch_size) as u64;
    tracing::info!(
        "data: {} training, {} validation, {} test images ({:.2} s)",
        n_train,
        validation.len(),
        test.len(),
        load_start.elapsed().as_secs_f64()
    );

    let mut start = if args.resume { resume_start(args, &run, device)? } else { fresh_start(args, device) };
    let model_summary = model::Architecture::from(args.network).summary();
    tracing::info!("{}", crate::summary::totals_line(&model_summary, args.batch_size as u64));
    run.create()?;
    run.remove_temporaries()?;
    let config = json!({
        "program": "trainer",
        "version": env!("CARGO_PKG_VERSION"),
        "tch": TCH_VERSION,
        "libtorch": env!("LIBTORCH_VERSION"),
        "device": device_name,
        "threads": threads,
        "recipe": recipe(args),
        "settings": args,
        "data": {
            "dir": args.data.data_dir.join(args.data.dataset.dir_name()),
            "n_train": n_train,
            "n_validation": validation.len(),
            "n_test": test.len(),
        },
        "steps_per_epoch": n_steps,
        "network_trainable_values": start.network.n_trainable_values(),
        "model": crate::summary::totals_json(&model_summary, args.batch_size as u64),
        "command": std::env::args().collect::<Vec<_>>(),
    });
    run_dir::write_atomically(&run.config_path(), serde_json::to_string_pretty(&config)?.as_bytes())?;
    // A resumed run keeps the records of the epochs it does not redo.
    let kept = run_dir::read_metrics_before(&run.metrics_path(), start.epoch)?;
    let kept_text: String = kept.iter().map(|record| format!("{record}\n")).collect();
    run_dir::write_atomically(&run.metrics_path(), kept_text.as_bytes())?;
    tracing::debug!("trainable variables:\n{}", start.network.variable_listing());

    let train = Arc::new(train);
    let (validation_images, validation_labels) = split_tensors(&validation, None, device)?;
    let augmenter = Augmenter::new(args.augment.into(), args.seed);
    // One augmentation thread is the producer itself; more get a rayon pool.
    let pool = if args.augment_threads > 1 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(args.augment_threads)
            .thread_name(|index| format!("augment-{index}"))
            .build()
            .context("cannot start the augmentation threads")?;
        Some(Arc::new(pool))
    } else {
        None
    };
    let color = console::use_color();
    let mut display_timer = Instant::now();

    for epoch in start.epoch..args.epochs {
        if stop.load(Ordering::SeqCst) {
            report(&format!("interrupted; resume with: {}", resume_command()));
            return Ok(());
        }
        let plan = EpochPlan {
            epoch,
            order: Arc::new(streams::epoch_order(args.seed, epoch, n_train)),
            batch_size: args.batch_size,
            first_step: start.state.step_in_epoch,
            n_steps,
        };
        let batches = EpochBatches::spawn(train.clone(), augmenter.clone(), pool.clone(), plan, args.prefetch);
        let label = format!("epoch {}/{}", epoch + 1, args.epochs);
        let mut progress = EpochProgress::start(label, n_steps, start.state.step_in_epoch);
        let (first_step, seconds_before) = (start.state.step_in_epoch, start.state.epoch_seconds);
        for batch in batches {
            let batch = batch.with_context(|| format!("augmenting a batch of epoch {epoch}"))?;
            let images = Tensor::from_slice(&batch.images).view([args.batch_size as i64, rows as i64, cols as i64]);
            let labels = Tensor::from_slice(&batch.labels);
            // Dropout's randomness depends on the step alone: resumable without libtorch's generator state.
            tch::manual_seed(streams::torch_seed(args.seed, Purpose::Dropout, start.step));
            let result = train_step(&start.network, &mut start.optimizer, &images, &labels)?;
            if !result.loss.is_finite() {
                bail!(
                    "the loss became {} at epoch {epoch}, step {} of the epoch's {n_steps} (step {} of the run; \
                     all 0-based): training diverged; try a lower --learning-rate",
                    result.loss,
                    batch.step_in_epoch,
                    start.step
                );
            }
            start.step += 1;
            start.state.step_in_epoch += 1;
            start.state.epoch_loss_sum += result.loss;
            start.state.epoch_n_correct += result.n_correct;
            let elapsed = progress.elapsed().as_secs_f64();
            let images_per_second =
                ((start.state.step_in_epoch - first_step) * args.batch_size as u64) as f64 / elapsed;
            progress.update(
                start.state.step_in_epoch,
                images_per_second,
                start.state.epoch_loss_sum / start.state.step_in_epoch as f64,
            );
            if stop.load(Ordering::SeqCst) {
                start.state.epoch_seconds = seconds_before + elapsed;
                drop(progress);
                let meta = checkpoint_meta(args, epoch, start.step, start.best, &start.state)?;
                checkpoint::save(&run.last_checkpoint(), &start.network, &start.optimizer, &meta)?;
                report(&format!(
                    "interrupted at epoch {epoch} (0-based), step {} of {n_steps}: state saved to {}",
                    start.state.step_in_epoch,
                    run.last_checkpoint().display()
                ));
                report(&format!("resume with: {}", resume_command()));
                return Ok(());
            }
        }
        ensure!(
            start.state.step_in_epoch == n_steps,
            "epoch {epoch} ended after {} of {n_steps} steps: the augmentation thread stopped",
            start.state.step_in_epoch
        );
        let train_seconds = seconds_before + progress.elapsed().as_secs_f64();
        drop(progress);
        let epoch_end = Instant::now();

        let sample = streams::train_sample(args.seed, epoch, n_train, args.train_accuracy_images);
        let (sample_images, sample_labels) = split_tensors(&train, Some(&sample), device)?;
        let train_evaluation = evaluate(&start.network, &sample_images, &sample_labels, args.eval_batch_size)?;
        let validation_evaluation =
            evaluate(&start.network, &validation_images, &validation_labels, args.eval_batch_size)?;
        let validation_accuracy = validation_evaluation.accuracy();
        let improved = start.best.is_none_or(|(best, _)| validation_accuracy > best);
        if improved {
            start.best = Some((validation_accuracy, epoch));
        }
        let mean_loss = start.state.epoch_loss_sum / n_steps as f64;
        let n_images_trained = n_steps * args.batch_size as u64;
        let record = json!({
            "epoch": epoch,
            "loss": mean_loss,
            "train_batch_accuracy": start.state.epoch_n_correct as f64 / n_images_trained as f64,
            "train_accuracy": train_evaluation.accuracy(),
            "validation_accuracy": validation_accuracy,
            "validation_loss": validation_evaluation.mean_loss(),
            "validation_n_correct": validation_evaluation.n_correct,
            "best_epoch": start.best.map(|(_, best_epoch)| best_epoch),
            "step": start.step,
            "seconds": train_seconds + epoch_end.elapsed().as_secs_f64(),
            "train_seconds": train_seconds,
            "images_per_second": n_images_trained as f64 / train_seconds,
        });
        run_dir::append_line(&run.metrics_path(), &record)?;
        tracing::info!(
            "epoch {}/{}: cost {mean_loss:.6}, train accuracy {:.5}, validation accuracy {validation_accuracy:.5}, \
             {train_seconds:.1} s training, {:.0} images/s",
            epoch + 1,
            args.epochs,
            train_evaluation.accuracy(),
            n_images_trained as f64 / train_seconds
        );
        if (epoch + 1) % args.display_step == 0 {
            report(&format!("time spent is {:.1} s", display_timer.elapsed().as_secs_f64()));
            display_timer = Instant::now();
            report(&format!("Epoch: {:03}/{:03} cost: {mean_loss:.9}", epoch + 1, args.epochs));
            report(&format!(" TRAIN ACCURACY: {:.5}", train_evaluation.accuracy()));
            report(&format!(" VALIDATION ACCURACY: {validation_accuracy:.5}"));
        }

        start.state = TrainerState {
            step_in_epoch: 0,
            epoch_loss_sum: 0.0,
            epoch_n_correct: 0,
            epoch_seconds: 0.0,
            ..start.state
        };
        let meta = checkpoint_meta(args, epoch + 1, start.step, start.best, &start.state)?;
        if (epoch + 1) % args.save_step == 0 {
            let path = run.epoch_checkpoint(epoch);
            checkpoint::save(&path, &start.network, &start.optimizer, &meta)?;
            report(&format!(" [{}] SAVED.", path.display()));
            for removed in run.prune(args.keep)? {
                tracing::info!("removed {} (--keep {})", removed.display(), args.keep);
            }
        }
        if improved {
            checkpoint::save(&run.best_checkpoint(), &start.network, &start.optimizer, &meta)?;
            report(&console::red(&format!(" BEST EPOCH UPDATED!! [{epoch}] "), color));
        }
        checkpoint::save(&run.last_checkpoint(), &start.network, &start.optimizer, &meta)?;
    }
    report("OPTIMIZATION FINISHED");

    let best_path = run.best_checkpoint();
    report(&format!("LOADING [{}]", best_path.display()));
    let best = checkpoint::load(&best_path, device)?;
    let (test_images, test_labels) = split_tensors(&test, None, device)?;
    let test_evaluation = evaluate(&best.network, &test_images, &test_labels, args.eval_batch_size)?;
    report(&format!("TEST ACCURACY: {:.5}", test_evaluation.accuracy()));
    let best_epoch = best.meta.best_validation_accuracy.map(|(_, epoch)| epoch);
    let mut test_record = evaluation_json(&test_evaluation);
    test_record["checkpoint"] = json!(best_path.file_name().map(|name| name.to_string_lossy().into_owned()));
    test_record["best_epoch"] = json!(best_epoch);
    test_record["best_validation_accuracy"] = json!(best.meta.best_validation_accuracy.map(|(accuracy, _)| accuracy));
    run_dir::append_line(&run.metrics_path(), &json!({ "test": test_record }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn parse(extra: &[&str]) -> TrainArgs {
        Cli::try_parse_from(std::iter::once("trainer").chain(extra.iter().copied())).unwrap().train
    }

    #[test]
    fn impossible_settings_name_the_flag() {
        for (flag, value) in [("--batch-size", "0"), ("--display-step", "0"), ("--keep", "0"), ("--epochs", "0")] {
            let message = validate(&parse(&[flag, value])).unwrap_err().to_string();
            assert!(message.contains(flag) && message.contains("at least 1"), "{message}");
        }
        let message = validate(&parse(&["--learning-rate", "nan"])).unwrap_err().to_string();
        assert!(message.contains("--learning-rate"), "{message}");
        validate(&parse(&[])).unwrap();
    }

    #[test]
    fn the_recorded_tch_version_is_the_pinned_one() {
        let manifest = include_str!("../../../Cargo.toml");
        assert!(manifest.contains(&format!("tch = \"={TCH_VERSION}\"")), "Cargo.toml pins another tch");
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
    }
}
