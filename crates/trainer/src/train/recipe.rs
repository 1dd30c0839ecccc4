//! The recipe a resumed run must share with its start, and the portable
//! settings and command `config.json` records.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use runfiles::{Difference, Recipe, RecipeChange};
use serde_json::{Value, json};

use super::options::{RunOptions, Start};
use crate::run_dir::RunDir;

/// The `tch` this program is built with (checked against Cargo.toml by the tidy test).
pub const TCH_VERSION: &str = "0.24.0";

/// The recipe of a command with every flag at its default: what a recipe
/// key missing from an older run's `config.json` stands for.
pub fn default_recipe() -> Recipe {
    use clap::Parser;
    let defaults = crate::cli::Cli::try_parse_from(["trainer"]).expect("the defaults parse");
    RunOptions::from_args(&defaults.train).expect("the defaults are valid").recipe()
}

/// What a resumed run inherits from its `config.json`: the recipe it was
/// started with and the history of explicit changes.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The recipe the run was started with (`None` without a `config.json`).
    pub recipe: Option<Recipe>,
    /// `recipe_changes`: each explicit change, oldest first.
    pub changes: Vec<RecipeChange>,
}

/// Refuses to resume with another recipe than the run was started with.
/// Keys a newer version added read as their defaults; a missing
/// `config.json` is an error unless `--force`.
pub fn check_resumed_recipe(options: &RunOptions, run: &RunDir) -> Result<Recorded> {
    let path = run.config_path();
    let force = matches!(options.start, Start::Resume { force: true, .. });
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) if force => {
            tracing::warn!("{} is missing: resuming without checking the recipe (--force)", path.display());
            return Ok(Recorded::default());
        }
        Err(error) => bail!(
            "--resume: cannot read {} ({error}), so the recipe cannot be checked; pass --force to resume anyway",
            path.display()
        ),
    };
    let config: Value =
        serde_json::from_str(&text).map_err(|error| anyhow::anyhow!("{}: not valid JSON ({error})", path.display()))?;
    let recorded_recipe = config.get("recipe").cloned().unwrap_or_else(|| json!({}));
    let started_with = Recipe::from_recorded(&recorded_recipe, &default_recipe())
        .map_err(|error| anyhow::anyhow!("{}: its `recipe` cannot be read ({error})", path.display()))?;
    if let Some(Difference { key, recorded, given }) =
        started_with.differences(&options.recipe_to_resume(&started_with)).into_iter().next()
    {
        let hint = if key == "learning_rate" || key == "schedule" {
            "pass the run's value; to train on with another, add --override-learning-rate"
        } else {
            "pass the run's value (or start a new run with another --save-dir)"
        };
        bail!(
            "--resume: the run in {} was started with {key} = {recorded}, but this command gives {given}; {hint}",
            run.path().display()
        );
    }
    let changes = match config.get("recipe_changes") {
        None | Some(Value::Null) => Vec::new(),
        Some(changes) => serde_json::from_value(changes.clone()).map_err(|error| {
            anyhow::anyhow!("{}: `recipe_changes` is not a list of recipe changes ({error})", path.display())
        })?,
    };
    Ok(Recorded { recipe: Some(started_with), changes })
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
pub fn portable_settings(options: &RunOptions, places: &Places<'_>) -> Value {
    let run_path = places.run.path();
    let mut settings = options.settings.clone();
    settings["save_dir"] = json!(portable_path(&options.save_dir, run_path));
    settings["data"]["data_dir"] = json!(portable_path(&options.data.data_dir, run_path));
    settings
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

    fn parse(extra: &[&str]) -> RunOptions {
        let args = Cli::try_parse_from(std::iter::once("trainer").chain(extra.iter().copied())).unwrap().train;
        RunOptions::from_args(&args).unwrap()
    }

    /// A run directory holding a copy of the committed 50-epoch run's
    /// `config.json`, with `edit` applied to it.
    fn committed_run(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
        let committed = repository().join("docs/results/mnist-50-epochs-cpu/config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
        edit(&mut config);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::run_dir::CONFIG_FILE), config.to_string()).unwrap();
        dir
    }

    #[test]
    fn the_committed_run_resumes_and_keys_it_lacks_read_as_their_defaults() {
        let resume = parse(&["--resume"]);
        let dir = committed_run(|_| {});
        let recorded = check_resumed_recipe(&resume, &RunDir::new(dir.path())).unwrap();
        let recipe = recorded.recipe.unwrap();
        assert_eq!(recipe.learning_rate, 0.001);
        // The committed run predates --schedule: its rate was constant.
        assert_eq!(recipe.schedule, "constant");
        // The committed run predates --precision: it was fp32, the default.
        assert_eq!(recipe.precision, "fp32");
        assert!(recorded.changes.is_empty());

        // A run directory from before `train_accuracy_images` was recorded.
        let older = committed_run(|config| {
            config["recipe"].as_object_mut().unwrap().remove("train_accuracy_images");
        });
        let recorded = check_resumed_recipe(&resume, &RunDir::new(older.path())).unwrap();
        assert_eq!(recorded.recipe.unwrap().train_accuracy_images, 500);
        let other = parse(&["--resume", "--train-accuracy-images", "100"]);
        let message = check_resumed_recipe(&other, &RunDir::new(older.path())).unwrap_err().to_string();
        assert!(message.contains("train_accuracy_images = 500, but this command gives 100"), "{message}");

        // Another learning rate is refused, pointing at the explicit override.
        let message = check_resumed_recipe(&parse(&["--resume", "--learning-rate", "0.01"]), &RunDir::new(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(message.contains("add --override-learning-rate"), "{message}");
    }

    #[test]
    fn a_missing_config_is_refused_on_resume_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let message = check_resumed_recipe(&parse(&["--resume"]), &run).unwrap_err().to_string();
        assert!(message.contains("config.json") && message.contains("pass --force"), "{message}");
        let recorded = check_resumed_recipe(&parse(&["--resume", "--force"]), &run).unwrap();
        assert!(recorded.recipe.is_none());
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

        let options = parse(&["--save-dir", &run_dir.path().display().to_string()]);
        let places = Places { run: &run, command: vec![data.display().to_string(), "--epochs".into()] };
        let settings = portable_settings(&options, &places);
        assert_eq!(settings["save_dir"], ".");
        assert_eq!(settings["data"]["data_dir"], "data");
        assert_eq!(portable_command(&places), vec!["data".to_owned(), "--epochs".to_owned()]);
    }
}
