//! The run's settings: checked before any work, the recipe a resumed run
//! must share with its start, and `config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};
use serde_json::{Value, json};

use crate::cli::TrainArgs;
use crate::run_dir::RunDir;

/// The `tch` this program is built with (checked against Cargo.toml by the tidy test).
pub const TCH_VERSION: &str = "0.24.0";

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

/// Everything that must stay the same for a resumed run to continue the
/// same run: compared with `config.json` on `--resume`.
pub fn recipe(args: &TrainArgs) -> Value {
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

/// Refuses to resume with another recipe than the run was started with
/// (`config.json` unreadable: warned, not checked).
pub fn check_resumed_recipe(args: &TrainArgs, run: &RunDir) -> Result<()> {
    let text = match std::fs::read_to_string(run.config_path()) {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!("{}: {error}; cannot check the settings match", run.config_path().display());
            return Ok(());
        }
    };
    let config: Value = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{}: not valid JSON ({error})", run.config_path().display()))?;
    for (key, value) in recipe(args).as_object().into_iter().flatten() {
        let recorded = &config["recipe"][key];
        if recorded != value {
            bail!(
                "--resume: the run in {} was started with {key} = {recorded}, but this command gives {value}; \
                 pass the run's value (or start a new run with another --save-dir)",
                run.path().display()
            );
        }
    }
    Ok(())
}

/// The repository this binary was built from: paths inside it are recorded relative to it.
fn repository() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `path` as `config.json` records it: `.` or `./...` inside the run
/// directory, relative inside the repository, else as given. A committed
/// run's settings then hold no machine's absolute paths.
pub fn portable_path(path: &Path, run_dir: &Path) -> String {
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let run_dir = run_dir.canonicalize().unwrap_or_else(|_| run_dir.to_path_buf());
    if let Ok(inside_run) = absolute.strip_prefix(&run_dir) {
        if inside_run.as_os_str().is_empty() {
            return ".".to_owned();
        }
        return Path::new(".").join(inside_run).display().to_string();
    }
    match absolute.strip_prefix(repository()) {
        Ok(inside_repository) if path.is_absolute() => inside_repository.display().to_string(),
        _ => path.display().to_string(),
    }
}

/// What `config.json` records about where the data and the run are, and the command.
pub struct Places<'a> {
    /// The run directory.
    pub run: &'a RunDir,
    /// The command line.
    pub command: Vec<String>,
}

/// `settings` (the arguments as JSON) with their paths made portable.
pub fn portable_settings(args: &TrainArgs, places: &Places<'_>) -> Result<Value> {
    let run_path = places.run.path();
    let mut settings = serde_json::to_value(args)?;
    settings["save_dir"] = json!(portable_path(&args.save_dir, run_path));
    settings["data"]["data_dir"] = json!(portable_path(&args.data.data_dir, run_path));
    Ok(settings)
}

/// The command line with the paths among its words made portable.
pub fn portable_command(places: &Places<'_>) -> Vec<String> {
    places
        .command
        .iter()
        .map(|word| {
            let path = Path::new(word);
            if path.is_absolute() && path.exists() { portable_path(path, places.run.path()) } else { word.clone() }
        })
        .collect()
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
    fn paths_are_recorded_relative_to_the_run_or_the_repository() {
        let run_dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(run_dir.path());
        assert_eq!(portable_path(run_dir.path(), run_dir.path()), ".");
        std::fs::create_dir(run_dir.path().join("report")).unwrap();
        assert_eq!(portable_path(&run_dir.path().join("report"), run_dir.path()), "./report");
        let data = repository().join("data");
        assert_eq!(portable_path(&data, run_dir.path()), "data");
        assert_eq!(portable_path(Path::new("nets/x"), run_dir.path()), "nets/x");
        let outside = Path::new("/definitely/not/here");
        assert_eq!(portable_path(outside, run_dir.path()), "/definitely/not/here");

        let args = parse(&["--save-dir", &run_dir.path().display().to_string()]);
        let places = Places { run: &run, command: vec![data.display().to_string(), "--epochs".into()] };
        let settings = portable_settings(&args, &places).unwrap();
        assert_eq!(settings["save_dir"], ".");
        assert_eq!(settings["data"]["data_dir"], "data");
        assert_eq!(portable_command(&places), vec!["data".to_owned(), "--epochs".to_owned()]);
    }
}
