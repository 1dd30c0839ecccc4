//! A sweep on one machine: `scripts/sweep_local.sh` runs a grid's tasks two
//! at a time into the same layout as the Slurm scripts, `trainer runs`
//! summarises them with each run's own numbers, and bad input (a task index
//! beyond the grid, a folder that is not a run) is an error naming it.

mod common;

use common::{assert_success, metrics, text};

const GRID: &str = r#"{"seeds": [3, 4],
    "flags": ["--epochs", "1", "--train-images", "1000", "--validation-size", "500",
              "--train-accuracy-images", "100", "--device", "cpu"],
    "recipes": [{"name": "augmented"}, {"name": "plain", "flags": ["--augment", "none"]}]}"#;

#[test]
fn a_local_sweep_runs_every_task_and_the_view_shows_the_runs_own_numbers() {
    let work = tempfile::tempdir().unwrap();
    let grid = work.path().join("grid.json");
    std::fs::write(&grid, GRID).unwrap();
    let sweep = work.path().join("sweep");
    let output = std::process::Command::new(common::repository().join("scripts/sweep_local.sh"))
        .arg(&grid)
        .arg(&sweep)
        .arg("2")
        .env("TRAINER", env!("CARGO_BIN_EXE_trainer"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert_success(&output);
    assert!(text(&output).contains("augment=none: 2/2 finished"), "{}", text(&output));

    let view = common::run(&["runs", "--json", &sweep.display().to_string()]);
    assert_success(&view);
    let view: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
    let names: Vec<&str> = view["runs"].as_array().unwrap().iter().map(|run| run["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["augmented/seed-3", "augmented/seed-4", "plain/seed-3", "plain/seed-4"]);
    for run in view["runs"].as_array().unwrap() {
        let records = metrics(&sweep.join(run["name"].as_str().unwrap()));
        let test = records.iter().find_map(|record| record.get("test")).unwrap();
        assert_eq!(run["test_accuracy"], test["accuracy"]);
        assert_eq!(run["state"], "finished");
        assert_eq!(run["best_validation_accuracy"], records[0]["validation_accuracy"]);
    }
    let groups = view["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let tests: Vec<f64> =
        view["runs"].as_array().unwrap()[..2].iter().map(|run| run["test_accuracy"].as_f64().unwrap()).collect();
    let mean = groups[0]["test_accuracy"]["mean"].as_f64().unwrap();
    assert!((mean - (tests[0] + tests[1]) / 2.0).abs() < 1e-12);
    assert_eq!(groups[0]["test_accuracy"]["min"].as_f64().unwrap(), tests[0].min(tests[1]));

    // The web app and the report show the same runs and the same groups.
    let (_server, line) = common::start_serve(work.path());
    let address = common::served_address(&line);
    let listing = common::get_json(&address, "/api/runs");
    let served = &listing["sweeps"][0];
    assert_eq!(served["name"], "sweep", "{listing}");
    let served_names: Vec<&str> =
        served["runs"].as_array().unwrap().iter().map(|run| run["name"].as_str().unwrap()).collect();
    assert_eq!(served_names, names.iter().map(|name| format!("sweep/{name}")).collect::<Vec<_>>());
    for (served, viewed) in served["groups"].as_array().unwrap().iter().zip(groups) {
        for key in ["label", "n_finished", "test_accuracy", "best_validation_accuracy"] {
            assert_eq!(served[key], viewed[key], "{key}");
        }
    }
    let member = common::get_json(&address, "/api/runs/sweep%2Fplain%2Fseed-4/metrics");
    assert_eq!(member["records"]["epochs"].as_array().unwrap().len(), 1, "{member}");
    let report = common::run(&["report", "--save-dir", &sweep.display().to_string()]);
    assert_success(&report);
    let page = std::fs::read_to_string(sweep.join("report/index.html")).unwrap();
    assert!(page.contains(&format!("{mean:.4}")) && page.contains("plain/seed-4"), "{page}");
    assert!(std::fs::read_to_string(sweep.join("report/curves.svg")).unwrap().contains("<svg"));
    // The report's folder is not taken for a run.
    assert_success(&common::run(&["runs", &sweep.display().to_string()]));

    // A second pass resumes nothing: every run has finished.
    let again = common::run(&[
        "sweep",
        "task",
        "--grid",
        &grid.display().to_string(),
        "--index",
        "3",
        "--sweep-dir",
        &sweep.display().to_string(),
    ]);
    assert_success(&again);
    assert!(text(&again).contains("has finished: nothing to do"), "{}", text(&again));

    // Bad input names what is wrong.
    let beyond = common::run(&[
        "sweep",
        "task",
        "--grid",
        &grid.display().to_string(),
        "--index",
        "4",
        "--sweep-dir",
        &sweep.display().to_string(),
    ]);
    assert!(text(&beyond).contains("task index 4 is beyond the grid's 4 tasks"), "{}", text(&beyond));
    std::fs::create_dir(sweep.join("stray")).unwrap();
    let stray = common::run(&["runs", &sweep.display().to_string()]);
    assert!(!stray.status.success());
    assert!(text(&stray).contains("stray: not a run (no config.json) and holds no run"), "{}", text(&stray));
    let curves = sweep.join("curves.png");
    std::fs::remove_dir(sweep.join("stray")).unwrap();
    assert_success(&common::run(&["runs", &sweep.display().to_string(), "--curves", &curves.display().to_string()]));
    assert!(std::fs::read(&curves).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn sigterm_to_a_local_sweep_stops_its_runs_saved_starts_no_other_and_a_rerun_finishes_them() {
    let work = tempfile::tempdir().unwrap();
    let grid = work.path().join("grid.json");
    let flags = r#"["--epochs", "6", "--train-images", "1000", "--validation-size", "500",
        "--train-accuracy-images", "100", "--augment", "none", "--device", "cpu"]"#;
    std::fs::write(&grid, format!(r#"{{"seeds": [1, 2, 3], "flags": {flags}, "recipes": [{{"name": "r"}}]}}"#))
        .unwrap();
    let sweep = work.path().join("sweep");
    let script = || {
        let mut command = std::process::Command::new(common::repository().join("scripts/sweep_local.sh"));
        command.arg(&grid).arg(&sweep).arg("1").env("TRAINER", env!("CARGO_BIN_EXE_trainer"));
        command.env_remove("LD_LIBRARY_PATH").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        command
    };
    let mut child = script().spawn().unwrap();
    // Signal once the first run has recorded an epoch: it is training, with its handlers in place.
    let first = sweep.join("r/seed-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(first.join("metrics.jsonl")).is_ok_and(|text| text.lines().count() >= 1) {
        assert!(std::time::Instant::now() < deadline, "the first run recorded no epoch in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the sweep did not stop within 120 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", text(&output));
    assert!(text(&output).contains("stopped by a signal"), "{}", text(&output));
    assert!(!sweep.join("logs/task-1.log").exists(), "a task started after the signal");
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(first.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "stopped", "{status}");
    let epochs_before = metrics(&first).iter().filter(|record| record.get("epoch").is_some()).count();
    assert!(epochs_before < 6, "the run stopped before its end");

    let rerun = script().output().unwrap();
    assert_success(&rerun);
    for seed in [1, 2, 3] {
        let epochs: Vec<u64> = metrics(&sweep.join(format!("r/seed-{seed}")))
            .iter()
            .filter_map(|record| record.get("epoch").and_then(serde_json::Value::as_u64))
            .collect();
        assert_eq!(epochs, (0..6).collect::<Vec<u64>>(), "seed {seed}: every epoch once");
    }
}
