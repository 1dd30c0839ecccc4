//! Every run committed under `docs/results/` reads: each line of its
//! `metrics.jsonl` is a record, written back it is the same JSON, and the
//! run's epochs and test record are all there.

use std::path::Path;

use crate::{Recipe, Record, Records};

/// The trainer's defaults for the settings older runs did not record.
fn defaults() -> Recipe {
    crate::recipe::tests::recipe()
}

/// The run folders (holding `metrics.jsonl`) at or below `folder`, down to
/// `depth` more levels: a sweep's are `SWEEP/RECIPE/seed-N`.
fn run_folders(folder: &Path, depth: usize, found: &mut Vec<std::path::PathBuf>) {
    if folder.join("metrics.jsonl").is_file() {
        found.push(folder.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let skipped = path.file_name().is_some_and(|name| crate::NOT_RUNS.iter().any(|skip| name == *skip));
        if path.is_dir() && !skipped {
            run_folders(&path, depth - 1, found);
        }
    }
}

#[test]
fn every_committed_run_reads_and_writes_back_unchanged() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/results");
    let mut found = Vec::new();
    run_folders(&results, 3, &mut found);
    let runs = found.len();
    for run in found {
        let metrics = run.join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics).unwrap();
        for (number, line) in text.lines().enumerate() {
            let record =
                Record::parse(line).unwrap_or_else(|| panic!("{}:{}: not a record", metrics.display(), number + 1));
            let original: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(record.to_value(), original, "{}:{}", metrics.display(), number + 1);
        }
        let records = Records::parse(&text);
        assert_eq!(records.skipped_lines, 0, "{}", metrics.display());
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        let epochs = config["settings"]["epochs"].as_u64().unwrap();
        let recipe = Recipe::from_recorded(&config["recipe"], &defaults())
            .unwrap_or_else(|error| panic!("{}: the recipe does not read: {error}", run.display()));
        assert_eq!(recipe.dataset, "mnist", "{}", run.display());
        // Every epoch, unless the run stopped early (`--patience`).
        let done = records.epochs.len() as u64;
        assert!(done == epochs || (done < epochs && recipe.patience.is_some()), "{}", metrics.display());
        assert!(records.test.is_some(), "{}: no test record", metrics.display());
        assert!(records.best_validation_accuracy().is_some(), "{}", metrics.display());
    }
    assert!(runs >= 5, "found {runs} committed runs");
}
