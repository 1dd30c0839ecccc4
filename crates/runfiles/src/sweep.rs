//! Many runs at once (a sweep: seeds, recipes): each run's summary from its
//! files, and the runs grouped by recipe with the spread of their test
//! accuracy. Pure functions over what the caller read, so the command line
//! and the web app show the same numbers.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{Recipe, Records, State, Status};

/// Folders of a sweep that are not runs and are not looked into: the
/// tasks' logs, and a report written into the sweep.
pub const NOT_RUNS: [&str; 2] = ["logs", "report"];

/// One run of a sweep, from its files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Its folder, relative to the sweep.
    pub name: String,
    /// The random seed.
    pub seed: u64,
    /// Its recipe (`config.json`).
    pub recipe: Recipe,
    /// Epochs it was started for (`settings.epochs`).
    pub epochs_total: Option<u64>,
    /// Epochs recorded.
    pub epochs_done: u64,
    /// Where it stands.
    pub state: State,
    /// The error of a failed last attempt.
    pub message: Option<String>,
    /// The best epoch (0-based) by validation accuracy.
    pub best_epoch: Option<u64>,
    /// Validation accuracy of the best epoch.
    pub best_validation_accuracy: Option<f64>,
    /// Test accuracy of the best epoch's checkpoint, once finished.
    pub test_accuracy: Option<f64>,
    /// Seconds of its recorded epochs, evaluation included.
    pub seconds: f64,
}

/// What a run's folder holds, as read by the caller.
#[derive(Debug, Clone, Copy)]
pub struct RunFiles<'a> {
    /// `config.json`, parsed.
    pub config: &'a Value,
    /// `metrics.jsonl`, parsed.
    pub records: &'a Records,
    /// `status.json`, when there is one.
    pub status: Option<&'a Status>,
    /// Whether the process `status` names as running is alive (on another
    /// host the caller cannot tell, and should say `true`).
    pub alive: bool,
}

impl RunFiles<'_> {
    /// Where the run stands: finished once its test is recorded; else
    /// running while the process its status names is alive, failed when
    /// its last attempt says so, and stopped otherwise (saved after a
    /// signal, or killed).
    pub fn state(&self) -> State {
        match self.status.map(|status| status.state) {
            _ if self.records.test.is_some() => State::Finished,
            Some(State::Running) if self.alive => State::Running,
            Some(State::Failed) => State::Failed,
            _ => State::Stopped,
        }
    }
}

impl RunSummary {
    /// The summary of the run in folder `name`; `defaults` stand for recipe
    /// keys its `config.json` lacks (written before they existed).
    ///
    /// # Errors
    /// A `config.json` without a readable recipe, naming why.
    pub fn new(name: &str, files: RunFiles<'_>, defaults: &Recipe) -> Result<Self, String> {
        let recorded = files.config.get("recipe").ok_or("config.json has no `recipe`")?;
        let recipe = Recipe::from_recorded(recorded, defaults).map_err(|error| format!("its recipe: {error}"))?;
        let records = files.records;
        let state = files.state();
        let message = files.status.filter(|_| state == State::Failed).and_then(|status| status.message.clone());
        Ok(Self {
            name: name.to_owned(),
            seed: recipe.seed,
            epochs_total: files.config.pointer("/settings/epochs").and_then(Value::as_u64),
            epochs_done: records.epochs.len() as u64,
            state,
            message,
            best_epoch: records.best_epoch(),
            best_validation_accuracy: records.best_validation_accuracy(),
            test_accuracy: records.test.as_ref().map(|test| test.accuracy),
            seconds: records.epochs.iter().filter_map(|epoch| epoch.seconds).sum(),
            recipe,
        })
    }
}

/// The spread of some numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// How many.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 for one number).
    pub std: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    ///
    /// ```
    /// let spread = runfiles::Spread::of(&[0.9950, 0.9954, 0.9958]).unwrap();
    /// assert_eq!((spread.n, spread.min, spread.max), (3, 0.9950, 0.9958));
    /// assert!((spread.mean - 0.9954).abs() < 1e-12 && (spread.std - 0.0004).abs() < 1e-12);
    /// ```
    pub fn of(values: &[f64]) -> Option<Spread> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance =
            if n > 1 { values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { n, mean, std: variance.sqrt(), min, max })
    }
}

/// Runs of one recipe (the same settings but the seed, and the same length).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The settings that tell this group from the others (none when it is alone).
    pub label: BTreeMap<String, Value>,
    /// Its runs' names.
    pub runs: Vec<String>,
    /// Finished runs.
    pub n_finished: usize,
    /// Their test accuracy.
    pub test_accuracy: Option<Spread>,
    /// The best epochs' validation accuracy of every run that has one.
    pub best_validation_accuracy: Option<Spread>,
}

/// A run's recipe without its seed and its validation fold, and its length:
/// what makes runs repeats of each other. A fold is a draw of the data as a
/// seed is one of the weights: runs of one recipe on several folds are
/// repeats, and their spread is the recipe's.
fn group_key(run: &RunSummary) -> BTreeMap<String, Value> {
    let mut key = match serde_json::to_value(&run.recipe) {
        Ok(Value::Object(map)) => map.into_iter().collect::<BTreeMap<_, _>>(),
        _ => BTreeMap::new(),
    };
    key.remove("seed");
    key.remove("validation_fold");
    key.insert("epochs".to_owned(), run.epochs_total.map_or(Value::Null, Value::from));
    key
}

/// `runs` grouped by recipe, in the order each recipe first appears; each
/// group labelled by the settings in which the groups differ.
pub fn group_by_recipe(runs: &[RunSummary]) -> Vec<Group> {
    let mut keys: Vec<BTreeMap<String, Value>> = Vec::new();
    let mut members: Vec<Vec<&RunSummary>> = Vec::new();
    for run in runs {
        let key = group_key(run);
        match keys.iter().position(|known| *known == key) {
            Some(index) => members[index].push(run),
            None => {
                keys.push(key);
                members.push(vec![run]);
            }
        }
    }
    let differing: Vec<&String> = keys
        .first()
        .map(|first| first.keys().filter(|name| keys.iter().any(|key| key[*name] != first[*name])).collect())
        .unwrap_or_default();
    keys.iter()
        .zip(members)
        .map(|(key, runs)| {
            let label = differing.iter().map(|name| ((*name).clone(), key[*name].clone())).collect();
            let tests: Vec<f64> = runs.iter().filter_map(|run| run.test_accuracy).collect();
            let validations: Vec<f64> = runs.iter().filter_map(|run| run.best_validation_accuracy).collect();
            Group {
                label,
                runs: runs.iter().map(|run| run.name.clone()).collect(),
                n_finished: tests.len(),
                test_accuracy: Spread::of(&tests),
                best_validation_accuracy: Spread::of(&validations),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, seed: u64, augment: &str, test: Option<f64>) -> RunSummary {
        let recipe = Recipe { seed, augment: augment.into(), ..crate::recipe::tests::recipe() };
        RunSummary {
            name: name.into(),
            seed,
            recipe,
            epochs_total: Some(50),
            epochs_done: 50,
            state: if test.is_some() { State::Finished } else { State::Running },
            message: None,
            best_epoch: Some(40),
            best_validation_accuracy: Some(0.995),
            test_accuracy: test,
            seconds: 10.0,
        }
    }

    #[test]
    fn runs_group_by_recipe_but_the_seed_and_are_labelled_by_what_differs() {
        let runs = [
            run("seed/seed-0", 0, "seed", Some(0.9950)),
            run("none/seed-0", 0, "none", Some(0.9930)),
            run("seed/seed-1", 1, "seed", Some(0.9958)),
            run("none/seed-1", 1, "none", None),
        ];
        let groups = group_by_recipe(&runs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].label, BTreeMap::from([("augment".to_owned(), Value::from("seed"))]));
        assert_eq!(groups[0].runs, ["seed/seed-0", "seed/seed-1"]);
        let spread = groups[0].test_accuracy.unwrap();
        assert_eq!((spread.n, spread.min, spread.max), (2, 0.9950, 0.9958));
        assert!((spread.mean - 0.9954).abs() < 1e-12);
        assert_eq!((groups[1].n_finished, groups[1].test_accuracy.unwrap().n), (1, 1));
        assert_eq!(groups[1].best_validation_accuracy.unwrap().n, 2);
        // One recipe alone needs no label; runs of another length are another group.
        let alone = group_by_recipe(&runs[..1]);
        assert!(alone[0].label.is_empty());
        let longer = RunSummary { epochs_total: Some(60), ..runs[0].clone() };
        let by_length = group_by_recipe(&[runs[0].clone(), longer]);
        assert_eq!(by_length[1].label, BTreeMap::from([("epochs".to_owned(), Value::from(60))]));
    }

    #[test]
    fn runs_on_other_validation_folds_are_repeats_of_one_recipe() {
        let on_fold = |name: &str, seed: u64, fold: u64, test: f64| {
            let summary = run(name, seed, "seed", Some(test));
            RunSummary { recipe: Recipe { validation_fold: fold, ..summary.recipe.clone() }, ..summary }
        };
        let runs = [
            on_fold("folds/seed-0", 0, 0, 0.9963),
            on_fold("folds/seed-1", 1, 1, 0.9971),
            run("none/seed-0", 0, "none", Some(0.9930)),
        ];
        let groups = group_by_recipe(&runs);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].runs, ["folds/seed-0", "folds/seed-1"]);
        assert_eq!(groups[0].label, BTreeMap::from([("augment".to_owned(), Value::from("seed"))]));
        assert_eq!(groups[0].test_accuracy.unwrap().n, 2);
    }

    #[test]
    fn the_state_comes_from_the_lock_the_test_record_and_the_last_ending() {
        let config = serde_json::json!({"recipe": {"seed": 3}, "settings": {"epochs": 2}});
        let finished = Records::parse(
            "{\"epoch\":0,\"loss\":1,\"validation_accuracy\":0.5,\"seconds\":2.5}\n{\"test\":{\"accuracy\":0.6}}",
        );
        let unfinished = Records::parse("{\"epoch\":0,\"loss\":1,\"validation_accuracy\":0.5}");
        let failed = Status {
            state: State::Failed,
            message: Some("disk full".into()),
            host: None,
            pid: None,
            epoch: 1,
            step: 20,
        };
        let running =
            Status { state: State::Running, message: None, host: Some("n1".into()), pid: Some(7), epoch: 1, step: 20 };
        let defaults = crate::recipe::tests::recipe();
        let summary = |records: &Records, status: Option<&Status>, alive: bool| {
            RunSummary::new("r", RunFiles { config: &config, records, status, alive }, &defaults).unwrap()
        };
        let done = summary(&finished, Some(&running), false);
        assert_eq!(
            (done.state, done.seed, done.epochs_total, done.test_accuracy),
            (State::Finished, 3, Some(2), Some(0.6))
        );
        assert_eq!(done.seconds, 2.5);
        assert_eq!(summary(&unfinished, Some(&running), true).state, State::Running);
        // A running status whose process is gone was killed.
        assert_eq!(summary(&unfinished, Some(&running), false).state, State::Stopped);
        assert_eq!(summary(&unfinished, None, false).state, State::Stopped);
        let broken = summary(&unfinished, Some(&failed), false);
        assert_eq!((broken.state, broken.message.as_deref()), (State::Failed, Some("disk full")));
        let message = RunSummary::new(
            "r",
            RunFiles { config: &serde_json::json!({}), records: &unfinished, status: None, alive: false },
            &defaults,
        )
        .unwrap_err();
        assert!(message.contains("no `recipe`"), "{message}");
    }
}
