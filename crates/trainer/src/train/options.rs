//! A `train` command read once: the flags checked and turned into the
//! run's typed options. Past [`RunOptions::from_args`] nothing in the run
//! reads `TrainArgs`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use model::schedule::{LearningRate, Schedule};
use runfiles::Recipe;
use serde_json::Value;

use super::policy::CheckpointPolicy;
use crate::cli::{
    DataArgs, FusedTailChoice, MAX_BATCH, MAX_EPOCHS, MAX_QUEUE, MAX_THREADS, NetworkChoice, PrecisionChoice,
    TrainArgs, check_range,
};

/// How the run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new run (`--save-dir` must not hold one).
    Fresh,
    /// The run in `--save-dir` continued.
    Resume {
        /// The checkpoint to continue from (`--resume-from`), else the newest that loads.
        from: Option<PathBuf>,
        /// Resume although `config.json` is missing (`--force`).
        force: bool,
        /// Train on with this constant learning rate (`--override-learning-rate`).
        new_learning_rate: Option<f64>,
    },
}

/// Where and with how many threads the run computes.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `--device`.
    pub device: model::DeviceRequest,
    /// libtorch's threads (one per core unless `--threads`).
    pub threads: usize,
    /// `--augment-threads`.
    pub augment_threads: usize,
    /// `--prefetch`.
    pub prefetch: usize,
}

/// Everything a run needs from its command, checked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the data is, which data set, and the validation split.
    pub data: DataArgs,
    /// Train on the first this many training images only.
    pub train_images: Option<usize>,
    /// The network.
    pub network: NetworkChoice,
    /// The augmentation's transforms.
    pub augment: augment::Pipeline,
    /// The training step's arithmetic.
    pub precision: PrecisionChoice,
    /// Whether training runs each convolution's tail as one fused pass
    /// (`auto`: as a resumed run recorded, else in bf16 only).
    pub fused_tail: FusedTailChoice,
    /// The seed of every random choice.
    pub seed: u64,
    /// Images per step.
    pub batch_size: usize,
    /// The base learning rate.
    pub learning_rate: f64,
    /// The learning-rate schedule over the base rate.
    pub schedule: Arc<dyn Schedule>,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: Option<u64>,
    /// The decay of the weights' moving average, when the run keeps one.
    pub ema: Option<f64>,
    /// Training images sampled each epoch for the training accuracy.
    pub train_accuracy_images: usize,
    /// Epochs in all (with a resume: counting those done).
    pub epochs: u64,
    /// The seed's report every this many epochs.
    pub display_step: u64,
    /// Images per evaluation batch.
    pub eval_batch_size: usize,
    /// Which checkpoints are written and kept.
    pub policy: CheckpointPolicy,
    /// Fresh or resumed.
    pub start: Start,
    /// Device and threads.
    pub machine: Machine,
    /// The run directory.
    pub save_dir: PathBuf,
    /// The flags as given, for `config.json`'s `settings`.
    pub settings: Value,
}

impl RunOptions {
    /// Checks `args` and reads them into options; an impossible setting is an error naming its flag.
    pub fn from_args(args: &TrainArgs) -> Result<Self> {
        validate(args)?;
        let schedule = model::schedule::parse(args.schedule_spec()).context("--schedule")?;
        let augment = augment::Pipeline::parse(&args.augment).context("--augment")?;
        let start = if args.resuming() {
            Start::Resume {
                from: args.resume_from.clone(),
                force: args.force,
                new_learning_rate: args.override_learning_rate,
            }
        } else {
            Start::Fresh
        };
        let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        Ok(Self {
            data: args.data.clone(),
            train_images: args.train_images,
            network: args.network,
            augment,
            precision: args.precision,
            fused_tail: args.fused_tail,
            seed: args.seed,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            schedule,
            patience: args.patience,
            ema: args.ema,
            train_accuracy_images: args.train_accuracy_images,
            epochs: args.epochs,
            display_step: args.display_step,
            eval_batch_size: args.eval_batch_size,
            policy: CheckpointPolicy { save_step: args.save_step, keep: args.keep },
            start,
            machine: Machine {
                device: args.device,
                threads,
                augment_threads: args.augment_threads,
                prefetch: args.prefetch,
            },
            save_dir: args.save_dir.clone(),
            settings: serde_json::to_value(args)?,
        })
    }

    /// Whether the run continues one in `save_dir`.
    pub fn resuming(&self) -> bool {
        matches!(self.start, Start::Resume { .. })
    }

    /// What the run computes, as `config.json` records it and a resume compares it.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            augment: self.augment.spec(),
            batch_size: self.batch_size as u64,
            dataset: self.data.dataset.name.to_owned(),
            ema: self.ema,
            fused_tail: self.fused_tail_of_a_new_run(),
            learning_rate: self.learning_rate,
            network: name_of(self.network),
            patience: self.patience,
            precision: name_of(self.precision),
            schedule: self.schedule.spec(),
            seed: self.seed,
            train_accuracy_images: self.train_accuracy_images as u64,
            train_images: self.train_images.map(|images| images as u64),
            validation_fold: self.data.validation_fold as u64,
            validation_size: self.data.validation_size as u64,
        }
    }

    /// Whether a run started by these options fuses the convolution tails:
    /// as asked, or with `auto` in bf16 only (every CPU that runs bf16 has
    /// the fused pass's AVX2 and FMA, so the choice does not depend on the
    /// machine; the fp32 default stays the seed's graph).
    pub fn fused_tail_of_a_new_run(&self) -> bool {
        match self.fused_tail {
            FusedTailChoice::On => true,
            FusedTailChoice::Off => false,
            FusedTailChoice::Auto => self.precision == PrecisionChoice::Bf16,
        }
    }

    /// The recipe a resumed run is compared with: with `--fused-tail auto`
    /// it takes the fused tail as `recorded` says, any other difference stays.
    pub fn recipe_to_resume(&self, recorded: &Recipe) -> Recipe {
        let mut recipe = self.recipe();
        if self.fused_tail == FusedTailChoice::Auto {
            recipe.fused_tail = recorded.fused_tail;
        }
        recipe
    }

    /// The learning rate from the run's first step, as the recipe says.
    pub fn learning_rate_timeline(&self) -> LearningRate {
        LearningRate::new(self.learning_rate, self.schedule.clone())
    }
}

/// The name a choice is recorded by (its kebab-case flag value).
fn name_of(choice: impl serde::Serialize) -> String {
    match serde_json::to_value(choice) {
        Ok(Value::String(name)) => name,
        other => unreachable!("a unit enum serializes to its name, not {other:?}"),
    }
}

/// Rejects impossible settings before any work is done.
fn validate(args: &TrainArgs) -> Result<()> {
    let positive = [
        ("--display-step", args.display_step),
        ("--save-step", args.save_step),
        ("--keep", args.keep as u64),
        ("--train-accuracy-images", args.train_accuracy_images as u64),
        ("--validation-size", args.data.validation_size as u64),
        ("--train-images", args.train_images.unwrap_or(1) as u64),
    ];
    for (flag, value) in positive {
        ensure!(value > 0, "{flag} must be at least 1, found 0");
    }
    // Bounded, so no value wraps around in a conversion or asks for a huge allocation.
    check_range("--epochs", args.epochs, 1, MAX_EPOCHS)?;
    check_range("--batch-size", args.batch_size, 1, MAX_BATCH)?;
    check_range("--eval-batch-size", args.eval_batch_size, 1, MAX_BATCH)?;
    check_range("--threads", args.threads.unwrap_or(1), 1, MAX_THREADS)?;
    check_range("--augment-threads", args.augment_threads, 1, MAX_THREADS)?;
    check_range("--prefetch", args.prefetch, 1, MAX_QUEUE)?;
    ensure!(
        args.learning_rate.is_finite() && args.learning_rate > 0.0,
        "--learning-rate must be a positive number, found {}",
        args.learning_rate
    );
    if let Some(rate) = args.override_learning_rate {
        ensure!(
            args.resuming(),
            "--override-learning-rate changes a resumed run (with --resume); a new run takes --learning-rate"
        );
        ensure!(rate.is_finite() && rate > 0.0, "--override-learning-rate must be a positive number, found {rate}");
    }
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

    fn refusal(extra: &[&str]) -> String {
        format!("{:#}", RunOptions::from_args(&parse(extra)).unwrap_err())
    }

    #[test]
    fn impossible_settings_name_the_flag() {
        for (flag, value) in [("--display-step", "0"), ("--keep", "0"), ("--save-step", "0")] {
            let message = refusal(&[flag, value]);
            assert!(message.contains(flag) && message.contains("at least 1"), "{message}");
        }
        let message = refusal(&["--learning-rate", "nan"]);
        assert!(message.contains("--learning-rate"), "{message}");
        let message = refusal(&["--override-learning-rate", "0.0001"]);
        assert!(message.contains("changes a resumed run"), "{message}");
        let message = refusal(&["--resume", "--override-learning-rate=-1"]);
        assert!(message.contains("--override-learning-rate must be a positive number"), "{message}");
        for (flag, value, expected) in [
            (
                "--schedule",
                "sawtooth",
                "unknown schedule \"sawtooth\" (known: constant, exponential, cosine, step, warmup)",
            ),
            ("--augment", "seed+wobble", "unknown transform \"wobble\" (known: seed, fused, elastic, affine, or none)"),
        ] {
            let message = Cli::try_parse_from(["trainer", flag, value]).unwrap_err().to_string();
            assert!(message.contains(flag) && message.contains(expected), "{message}");
        }
        let options =
            RunOptions::from_args(&parse(&["--resume-from", "x.safetensors", "--override-learning-rate", "1e-4"]))
                .unwrap();
        let expected =
            Start::Resume { from: Some("x.safetensors".into()), force: false, new_learning_rate: Some(1e-4) };
        assert_eq!(options.start, expected);
        for (flag, value, range) in [
            ("--threads", "3000000000", "between 1 and 1024, found 3000000000"),
            ("--prefetch", "1000000000", "between 1 and 65536, found 1000000000"),
            ("--eval-batch-size", "10000000", "between 1 and 65536"),
            ("--batch-size", "1000000", "between 1 and 65536"),
            ("--augment-threads", "0", "between 1 and 1024, found 0"),
            ("--epochs", "99999999999", "between 1 and 1000000"),
        ] {
            let message = refusal(&[flag, value]);
            assert!(message.starts_with(flag) && message.contains(range), "{message}");
        }
        assert_eq!(RunOptions::from_args(&parse(&[])).unwrap().start, Start::Fresh);
    }

    #[test]
    fn the_recipe_holds_every_setting_that_decides_what_the_run_computes() {
        let options = RunOptions::from_args(&parse(&[
            "--dataset",
            "fashion-mnist",
            "--batch-size",
            "64",
            "--augment",
            "none",
            "--seed",
            "9",
            "--train-images",
            "1000",
        ]))
        .unwrap();
        let recipe = options.recipe();
        assert_eq!(
            (recipe.dataset.as_str(), recipe.augment.as_str(), recipe.schedule.as_str()),
            ("fashion-mnist", "none", "constant")
        );
        assert_eq!((recipe.batch_size, recipe.seed, recipe.train_images), (64, 9, Some(1000)));
    }

    #[test]
    fn the_fused_tail_is_on_in_bf16_off_in_fp32_unless_asked_and_a_resumed_run_keeps_its_own() {
        let fused = |extra: &[&str]| RunOptions::from_args(&parse(extra)).unwrap().recipe().fused_tail;
        assert!(!fused(&[]), "the seed's fp32 recipe stays ATen's calls");
        assert!(fused(&["--precision", "bf16"]));
        assert!(fused(&["--fused-tail"]), "the bare flag means on");
        assert!(fused(&["--fused-tail", "on"]));
        assert!(!fused(&["--precision", "bf16", "--fused-tail", "off"]));
        let mut recorded = RunOptions::from_args(&parse(&["--precision", "bf16"])).unwrap().recipe();
        recorded.fused_tail = false;
        // `auto` takes the run's own choice (a bf16 run from before the default changed) ...
        let auto = RunOptions::from_args(&parse(&["--precision", "bf16", "--resume"])).unwrap();
        assert!(auto.recipe_to_resume(&recorded).differences(&recorded).is_empty());
        // ... but a choice given explicitly is compared.
        let on = RunOptions::from_args(&parse(&["--precision", "bf16", "--resume", "--fused-tail"])).unwrap();
        let differences = on.recipe_to_resume(&recorded).differences(&recorded);
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert_eq!(differences[0].key, "fused_tail");
    }
}
