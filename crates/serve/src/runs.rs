//! The run directories under `--runs`: listing, their records, and names
//! checked against the listing (a request's name never becomes a path).

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use runfiles::Records;
use runfiles::{Group, Recipe, RunFiles, RunSummary, State, Status, group_by_recipe};
use serde::Serialize;
use serde_json::Value;

use crate::Limits;
use crate::files::{FileProblem, StampCache, read_regular, regular_stamp};

/// The names of the files in a run directory, as the program that writes
/// them (the trainer) defines them; this crate only reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLayout {
    /// The best checkpoint, the one the page draws with.
    pub best_checkpoint: &'static str,
    /// The records, one JSON object per line.
    pub metrics: &'static str,
    /// The run's settings, one JSON object.
    pub config: &'static str,
    /// Where the run's latest attempt stands, one JSON object.
    pub status: &'static str,
}

/// How deep runs are looked for below `--runs`: a run itself (`NAME`), or
/// a sweep's run (`SWEEP/seed-0`, `SWEEP/RECIPE/seed-0`).
const MAX_DEPTH: usize = 3;
/// The largest `status.json` read (a few hundred bytes when written by the trainer).
const MAX_STATUS_BYTES: u64 = 64 << 10;

/// What the runs view shows of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The folder's path below `--runs`, `/`-separated (`NAME`, or
    /// `SWEEP/RECIPE/seed-0` for a sweep's run).
    pub name: String,
    /// The sweep it belongs to (the first folder of `name`), if it is nested.
    pub sweep: Option<String>,
    /// Where it stands (`status.json` and its records).
    pub state: State,
    /// Epochs recorded in `metrics.jsonl`.
    pub epochs_done: usize,
    /// Epochs the run was started for (`config.json`), if known.
    pub epochs_total: Option<u64>,
    /// The best epoch (0-based) and its validation accuracy.
    pub best_epoch: Option<u64>,
    /// Validation accuracy of the best epoch.
    pub best_validation_accuracy: Option<f64>,
    /// The final test accuracy, once the run has finished.
    pub test_accuracy: Option<f64>,
    /// Whether the run has finished (its test record is written).
    pub finished: bool,
    /// Whether it has a best checkpoint to draw with.
    pub has_checkpoint: bool,
    /// A few settings from `config.json` (network, data set, augmentation, ...).
    pub settings: serde_json::Map<String, Value>,
    /// Seconds since the epoch of its newest record.
    pub updated: f64,
    /// Files of the run that were not read, and why (a link, a FIFO, over the size cap).
    pub problems: Vec<String>,
}

/// A sweep: the runs below one folder of `--runs`, with the spread of their
/// test accuracy per recipe (the numbers `trainer runs` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepInfo {
    /// The folder's name.
    pub name: String,
    /// Its runs (names as in [`RunInfo::name`]), sorted by name.
    pub runs: Vec<RunSummary>,
    /// Its runs grouped by recipe.
    pub groups: Vec<Group>,
    /// Runs that could not be summarised, and why.
    pub problems: Vec<String>,
}

/// A run's parsed records, or why they could not be read.
type RecordsEntry = Result<Arc<Records>, FileProblem>;

/// The run directories under `--runs`, read through caches: each file is
/// read and parsed once per version (`files::StampCache`), only if it is a
/// regular file within its cap, and no symbolic link is followed (a linked
/// run folder or file is not listed or served). Every method does blocking
/// file work: call them off the async threads.
#[derive(Debug)]
pub struct Runs {
    dir: PathBuf,
    layout: RunLayout,
    limits: Limits,
    recipe_defaults: Recipe,
    records: StampCache<RecordsEntry>,
    configs: StampCache<Arc<Value>>,
    statuses: StampCache<Option<Status>>,
}

impl Runs {
    /// The runs under `dir`, whose files are named by `layout`;
    /// `recipe_defaults` stand for recipe keys older runs lack.
    pub fn new(dir: PathBuf, layout: RunLayout, limits: Limits, recipe_defaults: Recipe) -> Self {
        Self {
            dir,
            layout,
            limits,
            recipe_defaults,
            records: StampCache::default(),
            configs: StampCache::default(),
            statuses: StampCache::default(),
        }
    }

    /// The folder whose subfolders are runs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names of the files in a run directory.
    pub fn layout(&self) -> &RunLayout {
        &self.layout
    }

    /// The records of the run in `run`: none for a missing file; an error
    /// naming the file for one that is not a regular file or is too large.
    ///
    /// # Errors
    /// A [`FileProblem`] other than a missing file.
    pub fn records(&self, run: &Path) -> Result<Arc<Records>, FileProblem> {
        let limit = self.limits.max_records_bytes;
        let read = |path: &Path| {
            let (_, bytes) = read_regular(path, limit)?;
            Ok(Arc::new(Records::parse(&String::from_utf8_lossy(&bytes))))
        };
        match self.records.get(&run.join(self.layout.metrics), read) {
            Ok(entry) => entry,
            Err(FileProblem::Missing(_)) => Ok(Arc::default()),
            Err(problem) => Err(problem),
        }
    }

    /// The run's `config.json`, or `null` (and the problem) when it cannot be read.
    fn config(&self, run: &Path) -> (Arc<Value>, Option<FileProblem>) {
        let limit = self.limits.max_config_bytes;
        let read = |path: &Path| match read_regular(path, limit) {
            Ok((_, bytes)) => Arc::new(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
            Err(_) => Arc::new(Value::Null),
        };
        match self.configs.get(&run.join(self.layout.config), read) {
            Ok(config) => (config, None),
            Err(FileProblem::Missing(_)) => (Arc::new(Value::Null), None),
            Err(problem) => (Arc::new(Value::Null), Some(problem)),
        }
    }

    /// The run's `status.json`, if there is one that reads.
    fn status(&self, run: &Path) -> Option<Status> {
        let read = |path: &Path| {
            let (_, bytes) = read_regular(path, MAX_STATUS_BYTES).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        self.statuses.get(&run.join(self.layout.status), read).ok().flatten()
    }

    /// The best checkpoint of the run in `run`, if it is a regular file.
    ///
    /// # Errors
    /// The [`FileProblem`] of a missing or linked checkpoint.
    pub fn best_checkpoint(&self, run: &Path) -> Result<PathBuf, FileProblem> {
        let path = run.join(self.layout.best_checkpoint);
        regular_stamp(&path).map(|_| path)
    }

    fn info(&self, name: String, path: &Path) -> RunInfo {
        let mut problems = Vec::new();
        let records = self.records(path).unwrap_or_else(|problem| {
            problems.push(problem.to_string());
            Arc::default()
        });
        let (config, config_problem) = self.config(path);
        problems.extend(config_problem.map(|problem| problem.to_string()));
        let updated =
            regular_stamp(&path.join(self.layout.metrics)).map_or(0.0, |stamp| stamp.modified_ns as f64 / 1e9);
        let status = self.status(path);
        let alive = status.as_ref().is_some_and(Status::process_alive);
        let state = RunFiles { config: &config, records: &records, status: status.as_ref(), alive }.state();
        RunInfo {
            sweep: name.split_once('/').map(|(sweep, _)| sweep.to_owned()),
            state,
            name,
            epochs_done: records.epochs.len(),
            epochs_total: config["settings"]["epochs"].as_u64(),
            best_epoch: records.best_epoch(),
            best_validation_accuracy: records.best_validation_accuracy(),
            test_accuracy: records.test.as_ref().map(|test| test.accuracy),
            finished: records.test.is_some(),
            has_checkpoint: self.best_checkpoint(path).is_ok(),
            settings: shown_settings(&config),
            updated,
            problems,
        }
    }

    /// Whether `path` is a real folder (not a link) holding a run's records or settings.
    fn is_run(&self, path: &Path) -> bool {
        let is_folder = std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_dir());
        is_folder
            && [self.layout.metrics, self.layout.config]
                .iter()
                .any(|file| std::fs::symlink_metadata(path.join(file)).is_ok())
    }

    /// The names of the run folders (paths below `--runs`, `/`-separated),
    /// unsorted: runs directly below it, and runs of sweeps up to
    /// [`MAX_DEPTH`] folders down, at most `Limits::max_listed_runs`.
    fn names(&self) -> Vec<String> {
        let mut found = Vec::new();
        self.collect_names(&self.dir, "", 1, &mut found);
        found
    }

    fn collect_names(&self, folder: &Path, prefix: &str, depth: usize, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(folder) else { return };
        for entry in entries.flatten() {
            if found.len() >= self.limits.max_listed_runs {
                return;
            }
            // `file_type` does not follow links: a linked folder is skipped.
            let is_folder = entry.file_type().is_ok_and(|kind| kind.is_dir());
            let Some(name) = entry.file_name().into_string().ok().filter(|name| is_folder && !name.starts_with('.'))
            else {
                continue;
            };
            let path = folder.join(&name);
            let listed = format!("{prefix}{name}");
            if self.is_run(&path) {
                found.push(listed);
            } else if depth < MAX_DEPTH && !runfiles::NOT_RUNS.contains(&name.as_str()) {
                self.collect_names(&path, &format!("{listed}/"), depth + 1, found);
            }
        }
    }

    /// Every run directory (a folder, not a link, with `metrics.jsonl` or
    /// `config.json`), the most recently updated first.
    pub fn list(&self) -> Vec<RunInfo> {
        let names = self.names();
        let mut runs: Vec<RunInfo> =
            names.into_iter().map(|name| self.info(name.clone(), &self.dir.join(name))).collect();
        runs.sort_by(|a, b| b.updated.total_cmp(&a.updated).then_with(|| a.name.cmp(&b.name)));
        // Runs deleted since: their cached files are dropped.
        let live =
            |path: &Path| path.parent().is_some_and(|run| runs.iter().any(|info| self.dir.join(&info.name) == run));
        self.records.retain(live);
        self.configs.retain(live);
        self.statuses.retain(live);
        runs
    }

    /// The sweeps among `runs` (as [`Runs::list`] gave them), by name: each
    /// run summarised from its files and the runs grouped by recipe.
    pub fn sweeps(&self, runs: &[RunInfo]) -> Vec<SweepInfo> {
        let mut names: Vec<&str> = runs.iter().filter_map(|run| run.sweep.as_deref()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|name| self.sweep(name, runs)).collect()
    }

    fn sweep(&self, name: &str, runs: &[RunInfo]) -> SweepInfo {
        let mut members: Vec<&RunInfo> = runs.iter().filter(|run| run.sweep.as_deref() == Some(name)).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let (mut summaries, mut problems) = (Vec::new(), Vec::new());
        for member in members {
            match self.summary(&member.name) {
                Ok(summary) => summaries.push(summary),
                Err(reason) => problems.push(format!("{}: {reason}", member.name)),
            }
        }
        let groups = group_by_recipe(&summaries);
        SweepInfo { name: name.to_owned(), runs: summaries, groups, problems }
    }

    /// The summary of run `name` (a listed name) from its files.
    fn summary(&self, name: &str) -> Result<RunSummary, String> {
        let path = self.dir.join(name);
        let records = self.records(&path).map_err(|problem| problem.to_string())?;
        let (config, problem) = self.config(&path);
        if let Some(problem) = problem {
            return Err(problem.to_string());
        }
        let status = self.status(&path);
        let alive = status.as_ref().is_some_and(Status::process_alive);
        let files = RunFiles { config: &config, records: &records, status: status.as_ref(), alive };
        RunSummary::new(name, files, &self.recipe_defaults)
    }

    /// The folder of the run called `name`, if the listing of `--runs` has
    /// one: the name is compared with the folder's entries, never joined as
    /// given, so `..`, slashes or absolute paths never reach outside it.
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        self.names().into_iter().find(|candidate| candidate == name).map(|found| self.dir.join(found))
    }

    /// The drawing model when none is given: the best checkpoint of the most
    /// recently finished run, else of the most recently updated run that has one.
    pub fn default_checkpoint(&self) -> Option<(String, PathBuf)> {
        let runs = self.list();
        let pick = runs
            .iter()
            .find(|run| run.finished && run.has_checkpoint)
            .or_else(|| runs.iter().find(|run| run.has_checkpoint))?;
        Some((pick.name.clone(), self.dir.join(&pick.name).join(self.layout.best_checkpoint)))
    }
}

/// A few settings from `config.json` (network, data set, augmentation, ...).
fn shown_settings(config: &Value) -> serde_json::Map<String, Value> {
    let mut settings = serde_json::Map::new();
    for key in ["network", "augment", "batch_size", "learning_rate", "seed", "train_images", "epochs"] {
        if let Some(value) = config["settings"].get(key) {
            settings.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(dataset) = config["settings"]["data"].get("dataset") {
        settings.insert("dataset".to_owned(), dataset.clone());
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: RunLayout = RunLayout {
        best_checkpoint: "best.bin",
        metrics: "records.jsonl",
        config: "settings.json",
        status: "state.json",
    };

    /// The recipe settings a run's `config.json` may leave out.
    fn defaults() -> Recipe {
        let defaults = serde_json::json!({"augment": "seed", "batch_size": 50, "dataset": "mnist",
            "learning_rate": 0.001, "network": "intended", "precision": "fp32", "schedule": "constant", "seed": 0,
            "train_accuracy_images": 500, "validation_size": 5000});
        serde_json::from_value(defaults).unwrap()
    }

    fn make_run(dir: &Path, name: &str, metrics: &str, checkpoint: bool) {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(LAYOUT.metrics), metrics).unwrap();
        if checkpoint {
            std::fs::write(run.join(LAYOUT.best_checkpoint), b"x").unwrap();
        }
    }

    fn runs(dir: &Path) -> Runs {
        Runs::new(
            dir.to_path_buf(),
            LAYOUT,
            Limits { max_records_bytes: 1000, max_listed_runs: 5, ..Limits::default() },
            defaults(),
        )
    }

    #[test]
    fn names_are_checked_against_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        make_run(dir.path(), "a", "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.9}\n", true);
        std::fs::create_dir(dir.path().join("not-a-run")).unwrap();
        let runs = runs(dir.path());
        assert_eq!(runs.resolve("a"), Some(dir.path().join("a")));
        for name in ["..", "../a", "a/..", "/etc", "not-a-run", "", "a/"] {
            assert_eq!(runs.resolve(name), None, "{name:?}");
        }
    }

    #[test]
    fn records_skip_torn_lines_and_the_default_prefers_finished_runs() {
        let dir = tempfile::tempdir().unwrap();
        make_run(
            dir.path(),
            "done",
            "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.9}\n{\"test\":{\"accuracy\":0.91}}\n",
            true,
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        make_run(
            dir.path(),
            "training",
            "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.8}\n{\"epo",
            true,
        );
        let runs = runs(dir.path());
        let records = runs.records(&dir.path().join("training")).unwrap();
        assert_eq!((records.epochs.len(), records.skipped_lines), (1, 1));
        let listed = runs.list();
        assert_eq!(listed[0].name, "training", "the most recently updated first");
        assert_eq!(listed[1].test_accuracy, Some(0.91));
        assert_eq!(listed[1].best_validation_accuracy, Some(0.9));
        assert_eq!(runs.default_checkpoint().unwrap().0, "done");
    }

    #[test]
    fn links_fifos_and_oversized_records_are_not_followed_or_read() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        make_run(
            outside.path(),
            "elsewhere",
            "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.5}\n",
            true,
        );
        let runs_dir = dir.path().join("runs");
        std::fs::create_dir(&runs_dir).unwrap();
        // A linked run folder is not a run; a linked checkpoint is no checkpoint.
        std::os::unix::fs::symlink(outside.path().join("elsewhere"), runs_dir.join("linked")).unwrap();
        make_run(
            &runs_dir,
            "local",
            "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.7}\n",
            false,
        );
        std::os::unix::fs::symlink(
            outside.path().join("elsewhere").join(LAYOUT.best_checkpoint),
            runs_dir.join("local").join(LAYOUT.best_checkpoint),
        )
        .unwrap();
        // A FIFO for records, and records over the cap.
        std::fs::create_dir(runs_dir.join("fifo")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(runs_dir.join("fifo").join(LAYOUT.metrics)).status();
        assert!(status.expect("mkfifo runs").success());
        make_run(&runs_dir, "huge", &"x".repeat(1001), false);

        let runs = runs(&runs_dir);
        let listed = runs.list();
        let names: Vec<&str> = listed.iter().map(|run| run.name.as_str()).collect();
        assert!(!names.contains(&"linked"), "{names:?}");
        assert_eq!(runs.resolve("linked"), None);
        let local = listed.iter().find(|run| run.name == "local").unwrap();
        assert!(!local.has_checkpoint, "a linked best checkpoint is not used");
        assert!(runs.best_checkpoint(&runs_dir.join("local")).unwrap_err().to_string().contains("symbolic link"));
        assert_eq!(runs.default_checkpoint(), None);
        let fifo = listed.iter().find(|run| run.name == "fifo").unwrap();
        assert!(fifo.problems[0].contains("not a regular file (a FIFO)"), "{:?}", fifo.problems);
        let huge = listed.iter().find(|run| run.name == "huge").unwrap();
        assert!(huge.problems[0].contains("1001 bytes, more than the limit of 1000"), "{:?}", huge.problems);
    }

    #[test]
    fn listing_is_bounded_in_depth_and_in_number() {
        let dir = tempfile::tempdir().unwrap();
        let record = "{\"epoch\":0,\"loss\":0.5,\"best_epoch\":0,\"validation_accuracy\":0.9}\n";
        make_run(dir.path(), "sweep/recipe/seed-0", record, false);
        make_run(dir.path(), "sweep/recipe/deeper/seed-1", record, false);
        assert_eq!(runs(dir.path()).names(), ["sweep/recipe/seed-0"], "three folders down at most");
        for index in 0..7 {
            make_run(dir.path(), &format!("run-{index}"), record, false);
        }
        assert_eq!(runs(dir.path()).list().len(), 5, "Limits::max_listed_runs");
    }
}
