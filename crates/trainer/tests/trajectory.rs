//! `scripts/checkpoint_trajectory.py`: each periodic checkpoint of a run
//! tested once, with the accuracy `trainer evaluate` gives it, each run's
//! mean and each group's; a folder without checkpoints is an error naming it.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_success, text};

/// The script on `runs` (each `GROUP=DIR` or `DIR`) from epoch `from`.
fn trajectory(from: u32, runs: &[String]) -> Output {
    std::process::Command::new("python3")
        .arg(common::repository().join("scripts/checkpoint_trajectory.py"))
        .args(["--trainer", env!("CARGO_BIN_EXE_trainer"), "--from-epoch", &from.to_string()])
        .args(runs)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("python3 (Debian's python3 package) is needed to run scripts/checkpoint_trajectory.py")
}

/// `trainer evaluate`'s test accuracy of one checkpoint.
fn evaluated(checkpoint: &Path) -> f64 {
    let output =
        common::run(&["evaluate", "--json", "--device", "cpu", "--checkpoint", &checkpoint.display().to_string()]);
    assert_success(&output);
    serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["accuracy"].as_f64().unwrap()
}

/// The table row of `run` in `group` in the script's output, split into its cells.
fn row_of(output: &Output, group: &str, run: &str) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = format!("| {group} | {run} |");
    let line = stdout.lines().find(|line| line.starts_with(&start)).unwrap_or_else(|| panic!("{stdout}"));
    line.trim_matches('|').split('|').map(|cell| cell.trim().to_owned()).collect()
}

#[test]
fn each_checkpoint_is_tested_as_evaluate_tests_it_and_the_means_follow() {
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    assert_success(&common::train(&run, &["--epochs", "2", "--save-step", "1", "--augment", "none"]));
    let expected: Vec<f64> = (0..2).map(|epoch| evaluated(&run.join(format!("net-{epoch}.safetensors")))).collect();

    let both = trajectory(0, &[format!("quick={}", run.display())]);
    assert_success(&both);
    let cells = row_of(&both, "quick", "run");
    assert_eq!(cells[0], "quick");
    assert_eq!(cells[2], format!("0: {:.4}, 1: {:.4}", expected[0], expected[1]), "{}", text(&both));
    assert_eq!(cells[3], format!("{:.5}", (expected[0] + expected[1]) / 2.0));

    // From epoch 1 only the second checkpoint counts; the run given twice in
    // one group makes a group of two equal means.
    let late = trajectory(1, &[format!("g={}", run.display()), format!("g={}", run.display())]);
    assert_success(&late);
    assert_eq!(row_of(&late, "g", "run")[2], format!("1: {:.4}", expected[1]));
    assert!(text(&late).contains(&format!("| g | {:.5} ± 0.00000 (n=2) |", expected[1])), "{}", text(&late));

    // A folder with no periodic checkpoint from that epoch on is named.
    let beyond = trajectory(5, &[run.display().to_string()]);
    assert!(!beyond.status.success());
    assert!(
        text(&beyond).contains(&format!("{}: no net-N.safetensors with N >= 5", run.display())),
        "{}",
        text(&beyond)
    );
}
