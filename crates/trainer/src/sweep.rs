//! `trainer sweep`: many runs from one grid file, one run per task index,
//! so that a Slurm job array (`scripts/slurm/sweep.sbatch`), a Kubernetes
//! Indexed Job or a local loop (`scripts/sweep_local.sh`) starts them and
//! nothing here schedules anything (`docs/CLUSTER.md`).
//!
//! A grid is JSON: the seeds, flags common to every run, and named recipes
//! (their own flags). Task `i` is recipe `i / n_seeds` with seed
//! `seeds[i % n_seeds]`, trained with `--resume` in `SWEEP/RECIPE/seed-S`,
//! so a requeued or repeated task continues its run. `{seed}` in a flag
//! stands for the task's seed (`["--validation-fold", "{seed}"]` gives each
//! seed its own validation images).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use crate::cli::{SweepPlanArgs, SweepTaskArgs};

/// A grid file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// The seeds every recipe is trained with.
    pub seeds: Vec<u64>,
    /// `trainer train` flags common to every run (`{seed}` becomes the task's seed).
    #[serde(default)]
    pub flags: Vec<String>,
    /// The recipes, in task order.
    pub recipes: Vec<GridRecipe>,
}

/// One recipe of a grid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridRecipe {
    /// Its name: the folder of its runs (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// Its own `trainer train` flags, after the common ones (`{seed}` as in the common ones).
    #[serde(default)]
    pub flags: Vec<String>,
}

/// Flags the grid may not set: the sweep sets them for each task.
const SET_BY_THE_SWEEP: [&str; 4] = ["--seed", "--save-dir", "--resume", "--resume-from"];

/// What a grid's flag writes for the task's seed.
const SEED_PLACEHOLDER: &str = "{seed}";

/// One task of a grid: a recipe and a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Task<'a> {
    /// The recipe.
    pub recipe: &'a GridRecipe,
    /// The seed.
    pub seed: u64,
}

impl Task<'_> {
    /// The run's folder inside the sweep.
    pub fn run_dir(&self) -> PathBuf {
        Path::new(&self.recipe.name).join(format!("seed-{}", self.seed))
    }
}

impl Grid {
    /// Reads and checks a grid file: known keys only, at least one seed and
    /// recipe, unique seeds and names, and flags `trainer train` accepts.
    pub fn read(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the grid {}", path.display()))?;
        let grid: Grid =
            serde_json::from_str(&text).map_err(|error| anyhow::anyhow!("grid {}: {error}", path.display()))?;
        grid.check().with_context(|| format!("grid {}", path.display()))?;
        Ok(grid)
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.seeds.is_empty(), "`seeds` is empty: expected at least one seed");
        ensure!(!self.recipes.is_empty(), "`recipes` is empty: expected at least one recipe");
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        ensure!(seeds.len() == self.seeds.len(), "`seeds` lists a seed twice: {:?}", self.seeds);
        for (index, recipe) in self.recipes.iter().enumerate() {
            let valid = !recipe.name.is_empty()
                && !recipe.name.starts_with('.')
                && recipe.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            ensure!(valid, "recipe {index}: name {:?}: expected letters, digits, `.`, `_` and `-`", recipe.name);
            ensure!(
                self.recipes[..index].iter().all(|other| other.name != recipe.name),
                "recipe name {:?} is used twice",
                recipe.name
            );
            self.train_args(recipe, self.seeds[0], Path::new("sweep"), &[])
                .with_context(|| format!("recipe {:?}", recipe.name))?;
        }
        Ok(())
    }

    /// The number of tasks: recipes times seeds.
    pub fn n_tasks(&self) -> usize {
        self.recipes.len() * self.seeds.len()
    }

    /// Task `index` (0-based).
    pub fn task(&self, index: usize) -> Result<Task<'_>> {
        ensure!(
            index < self.n_tasks(),
            "task index {index} is beyond the grid's {} tasks ({} recipes x {} seeds: indices 0 to {})",
            self.n_tasks(),
            self.recipes.len(),
            self.seeds.len(),
            self.n_tasks() - 1
        );
        let n_seeds = self.seeds.len();
        Ok(Task { recipe: &self.recipes[index / n_seeds], seed: self.seeds[index % n_seeds] })
    }

    /// The `trainer train` command line of a recipe and seed in `sweep_dir`,
    /// with `extra` flags (the machine's: threads, device) last.
    pub fn train_args(
        &self,
        recipe: &GridRecipe,
        seed: u64,
        sweep_dir: &Path,
        extra: &[String],
    ) -> Result<crate::cli::TrainArgs> {
        for flag in self.flags.iter().chain(&recipe.flags).chain(extra) {
            let name = flag.split('=').next().unwrap_or(flag);
            ensure!(!SET_BY_THE_SWEEP.contains(&name), "{name} is set by the sweep for each task; remove it");
        }
        let run_dir = sweep_dir.join(Task { recipe, seed }.run_dir());
        let with_seed = |flag: &String| flag.replace(SEED_PLACEHOLDER, &seed.to_string());
        let words = ["trainer".to_owned(), "train".to_owned()]
            .into_iter()
            .chain(self.flags.iter().map(with_seed))
            .chain(recipe.flags.iter().map(with_seed))
            .chain(["--seed".to_owned(), seed.to_string(), "--save-dir".to_owned(), run_dir.display().to_string()])
            .chain(["--resume".to_owned()])
            .chain(extra.iter().cloned());
        let cli = crate::presets::parse_from(words)
            .map_err(|error| anyhow::anyhow!("{}", error.render().to_string().trim()))?;
        match cli.command {
            Some(crate::cli::Command::Train(args)) => Ok(args),
            _ => bail!("not a train command"),
        }
    }
}

/// `trainer sweep plan`: the tasks of a grid, one line each (`INDEX RUN_DIR`), or their number.
pub fn plan(args: &SweepPlanArgs) -> Result<()> {
    let grid = Grid::read(&args.grid)?;
    if args.count {
        println!("{}", grid.n_tasks());
        return Ok(());
    }
    for index in 0..grid.n_tasks() {
        println!("{index} {}", grid.task(index)?.run_dir().display());
    }
    Ok(())
}

/// `trainer sweep task`: trains (or resumes) the run of one task.
pub fn task(args: &SweepTaskArgs, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let grid = Grid::read(&args.grid)?;
    let task = grid.task(args.index)?;
    let train = grid.train_args(task.recipe, task.seed, &args.sweep_dir, &args.extra)?;
    if finished(&train.save_dir) {
        crate::console::report(&format!("{} has finished: nothing to do", train.save_dir.display()));
        return Ok(());
    }
    std::fs::create_dir_all(train.save_dir.parent().unwrap_or(&args.sweep_dir))
        .with_context(|| format!("cannot create {}", args.sweep_dir.display()))?;
    tracing::info!("sweep task {} of {}: {} with seed {}", args.index, grid.n_tasks(), task.recipe.name, task.seed);
    crate::train::run(&train, stop)
}

/// Whether the run in `dir` has finished: its last attempt says so and its test is recorded.
fn finished(dir: &Path) -> bool {
    let status: Option<runfiles::Status> =
        std::fs::read(dir.join(crate::run_dir::STATUS_FILE)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let tested = std::fs::read_to_string(dir.join(crate::run_dir::METRICS_FILE))
        .is_ok_and(|text| runfiles::Records::parse(&text).test.is_some());
    status.is_some_and(|status| status.state == runfiles::State::Finished) && tested
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(text: &str) -> Result<Grid> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.json");
        std::fs::write(&path, text).unwrap();
        Grid::read(&path)
    }

    const GRID: &str = r#"{"seeds": [0, 1, 2], "flags": ["--epochs", "2"],
        "recipes": [{"name": "seed"}, {"name": "no-augment", "flags": ["--augment", "none"]}]}"#;

    #[test]
    fn task_indices_run_through_the_seeds_of_each_recipe() {
        let grid = grid(GRID).unwrap();
        assert_eq!(grid.n_tasks(), 6);
        let names: Vec<String> =
            (0..6).map(|index| grid.task(index).unwrap().run_dir().display().to_string()).collect();
        assert_eq!(
            names,
            [
                "seed/seed-0",
                "seed/seed-1",
                "seed/seed-2",
                "no-augment/seed-0",
                "no-augment/seed-1",
                "no-augment/seed-2"
            ]
        );
        let task = grid.task(4).unwrap();
        let args =
            grid.train_args(task.recipe, task.seed, Path::new("/sweeps/a"), &["--threads".into(), "2".into()]).unwrap();
        assert_eq!((args.seed, args.epochs, args.augment.as_str(), args.threads), (1, 2, "none", Some(2)));
        assert_eq!(args.save_dir, Path::new("/sweeps/a/no-augment/seed-1"));
        assert!(args.resume);
        let message = grid.task(6).unwrap_err().to_string();
        assert_eq!(message, "task index 6 is beyond the grid's 6 tasks (2 recipes x 3 seeds: indices 0 to 5)");
    }

    #[test]
    fn seed_in_a_flag_becomes_each_tasks_seed() {
        let grid = grid(
            r#"{"seeds": [3, 4], "flags": ["--validation-fold", "{seed}"],
                "recipes": [{"name": "folds", "flags": ["--save-step={seed}00"]}]}"#,
        )
        .unwrap();
        for index in 0..2 {
            let task = grid.task(index).unwrap();
            let args = grid.train_args(task.recipe, task.seed, Path::new("sweep"), &[]).unwrap();
            assert_eq!((args.seed, args.data.validation_fold), (task.seed, task.seed as usize));
            assert_eq!(args.save_step, task.seed * 100);
        }
    }

    #[test]
    fn bad_grids_are_refused_naming_the_file_and_what_is_wrong() {
        let refusal = |text: &str| format!("{:#}", grid(text).unwrap_err());
        let message = refusal(r#"{"seeds": [0], "recipes": [{"name": "a"}], "epochs": 3}"#);
        assert!(message.contains("grid.json") && message.contains("unknown field `epochs`"), "{message}");
        let message = refusal(r#"{"seeds": [0], "recipes": [{"name": "a", "flags": ["--warp-speed", "9"]}]}"#);
        assert!(message.contains("recipe \"a\"") && message.contains("--warp-speed"), "{message}");
        let message = refusal(r#"{"seeds": [0], "recipes": [{"name": "a", "flags": ["--seed", "9"]}]}"#);
        assert!(message.contains("--seed is set by the sweep"), "{message}");
        let message = refusal(r#"{"seeds": [0], "recipes": [{"name": "../up"}]}"#);
        assert!(message.contains("name \"../up\""), "{message}");
        let message = refusal(r#"{"seeds": [0, 0], "recipes": [{"name": "a"}]}"#);
        assert!(message.contains("a seed twice"), "{message}");
        let message = refusal(r#"{"seeds": [], "recipes": [{"name": "a"}]}"#);
        assert!(message.contains("`seeds` is empty"), "{message}");
        let message = refusal(r#"{"seeds": [1], "recipes": [{"name": "a"}, {"name": "a"}]}"#);
        assert!(message.contains("used twice"), "{message}");
        let message = refusal("{\"seeds\": [1], ");
        assert!(message.contains("grid.json") && message.contains("EOF"), "{message}");
    }

    /// The grids the docs give as the commands behind committed results
    /// must stay runnable as flags and presets change.
    #[test]
    fn every_committed_grid_reads_and_its_flags_parse() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/grids");
        let mut n_grids = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "json") {
                let grid = Grid::read(&path).unwrap_or_else(|error| panic!("{error:#}"));
                assert!(grid.n_tasks() > 0, "{}", path.display());
                n_grids += 1;
            }
        }
        assert!(n_grids >= 10, "expected the committed grids in {}, found {n_grids}", folder.display());
    }
}
