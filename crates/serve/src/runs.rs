//! The run directories under `--runs`: listing, their records, and names
//! checked against the listing (a request's name never becomes a path).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

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
}

/// What the runs view shows of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The folder's name.
    pub name: String,
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
}

/// The records of `metrics.jsonl` that parse, and how many lines did not
/// (a line being written, or torn by a kill).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Records {
    /// Epoch records, in order.
    pub epochs: Vec<Value>,
    /// The final test record.
    pub test: Option<Value>,
    /// Lines skipped.
    pub skipped_lines: usize,
}

/// Reads `metrics.jsonl` leniently; a missing file has no records.
pub fn read_records(run: &Path, layout: &RunLayout) -> Records {
    let text = std::fs::read_to_string(run.join(layout.metrics)).unwrap_or_default();
    let mut records = Records::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(record) if record.get("test").is_some() => records.test = record.get("test").cloned(),
            // A learning-rate change made on resume: a record, not an epoch.
            Ok(record) if record.get("recipe_change").is_some() => {}
            Ok(record) if record.get("epoch").and_then(Value::as_u64).is_some() => records.epochs.push(record),
            _ => records.skipped_lines += 1,
        }
    }
    records
}

fn seconds(time: Option<SystemTime>) -> f64 {
    time.and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn info(name: String, path: &Path, layout: &RunLayout) -> RunInfo {
    let records = read_records(path, layout);
    let config: Value = std::fs::read_to_string(path.join(layout.config))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let mut settings = serde_json::Map::new();
    for key in ["network", "augment", "batch_size", "learning_rate", "seed", "train_images", "epochs"] {
        if let Some(value) = config["settings"].get(key) {
            settings.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(dataset) = config["settings"]["data"].get("dataset") {
        settings.insert("dataset".to_owned(), dataset.clone());
    }
    let last = records.epochs.last();
    let best_epoch = last.and_then(|record| record["best_epoch"].as_u64());
    let best_validation_accuracy = best_epoch.and_then(|best| {
        records.epochs.iter().find(|record| record["epoch"].as_u64() == Some(best))?["validation_accuracy"].as_f64()
    });
    let updated = std::fs::metadata(path.join(layout.metrics)).and_then(|metadata| metadata.modified()).ok();
    RunInfo {
        name,
        epochs_done: records.epochs.len(),
        epochs_total: config["settings"]["epochs"].as_u64(),
        best_epoch,
        best_validation_accuracy,
        test_accuracy: records.test.as_ref().and_then(|test| test["accuracy"].as_f64()),
        finished: records.test.is_some(),
        has_checkpoint: path.join(layout.best_checkpoint).is_file(),
        settings,
        updated: seconds(updated),
    }
}

/// Every run directory under `dir` (a folder with `metrics.jsonl` or
/// `config.json`), the most recently updated first.
pub fn list(dir: &Path, layout: &RunLayout) -> Vec<RunInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut runs: Vec<RunInfo> = entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter(|entry| entry.path().join(layout.metrics).exists() || entry.path().join(layout.config).exists())
        .filter_map(|entry| Some(info(entry.file_name().into_string().ok()?, &entry.path(), layout)))
        .collect();
    runs.sort_by(|a, b| b.updated.total_cmp(&a.updated).then_with(|| a.name.cmp(&b.name)));
    runs
}

/// The folder of the run called `name`, if the listing of `dir` has one:
/// the name is compared with the listing, never joined as given, so `..`,
/// slashes or absolute paths can never reach outside `dir`.
pub fn resolve(dir: &Path, layout: &RunLayout, name: &str) -> Option<PathBuf> {
    list(dir, layout).into_iter().find(|run| run.name == name).map(|run| dir.join(run.name))
}

/// The drawing model when none is given: the best checkpoint of the most
/// recently finished run, else of the most recently updated run that has one.
pub fn default_checkpoint(dir: &Path, layout: &RunLayout) -> Option<(String, PathBuf)> {
    let runs = list(dir, layout);
    let pick = runs
        .iter()
        .find(|run| run.finished && run.has_checkpoint)
        .or_else(|| runs.iter().find(|run| run.has_checkpoint))?;
    Some((pick.name.clone(), dir.join(&pick.name).join(layout.best_checkpoint)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: RunLayout =
        RunLayout { best_checkpoint: "best.bin", metrics: "records.jsonl", config: "settings.json" };

    fn make_run(dir: &Path, name: &str, metrics: &str, checkpoint: bool) {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(LAYOUT.metrics), metrics).unwrap();
        if checkpoint {
            std::fs::write(run.join(LAYOUT.best_checkpoint), b"x").unwrap();
        }
    }

    #[test]
    fn names_are_checked_against_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        make_run(dir.path(), "a", "{\"epoch\":0,\"best_epoch\":0,\"validation_accuracy\":0.9}\n", true);
        std::fs::create_dir(dir.path().join("not-a-run")).unwrap();
        assert_eq!(resolve(dir.path(), &LAYOUT, "a"), Some(dir.path().join("a")));
        for name in ["..", "../a", "a/..", "/etc", "not-a-run", "", "a/"] {
            assert_eq!(resolve(dir.path(), &LAYOUT, name), None, "{name:?}");
        }
    }

    #[test]
    fn records_skip_torn_lines_and_the_default_prefers_finished_runs() {
        let dir = tempfile::tempdir().unwrap();
        make_run(
            dir.path(),
            "done",
            "{\"epoch\":0,\"best_epoch\":0,\"validation_accuracy\":0.9}\n{\"test\":{\"accuracy\":0.91}}\n",
            true,
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        make_run(dir.path(), "training", "{\"epoch\":0,\"best_epoch\":0,\"validation_accuracy\":0.8}\n{\"epo", true);
        let records = read_records(&dir.path().join("training"), &LAYOUT);
        assert_eq!((records.epochs.len(), records.skipped_lines), (1, 1));
        let runs = list(dir.path(), &LAYOUT);
        assert_eq!(runs[0].name, "training", "the most recently updated first");
        assert_eq!(runs[1].test_accuracy, Some(0.91));
        assert_eq!(runs[1].best_validation_accuracy, Some(0.9));
        assert_eq!(default_checkpoint(dir.path(), &LAYOUT).unwrap().0, "done");
    }
}
