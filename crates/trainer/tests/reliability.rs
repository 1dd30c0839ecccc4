//! A run survives anything: one writer per run directory, SIGTERM and SIGHUP,
//! kills inside every write window (by fault injection), a full disk,
//! corrupt or stray checkpoints, a state that is not finite, and explicit
//! recipe changes. Each case resumes and ends with the uninterrupted run's
//! records and checkpoints, bit for bit (timings aside).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::OnceLock;

use common::{
    assert_every_checkpoint_loads, assert_same_checkpoint, assert_success, metrics, metrics_without_timings,
    temporary_files, text, train, train_args, trainer,
};

/// Every run here: 2 epochs of 20 steps, a numbered checkpoint every epoch.
const EPOCHS: &[&str] = &["--epochs", "2", "--save-step", "1"];

/// The uninterrupted run (made once, shared).
fn reference() -> &'static Path {
    static REFERENCE: OnceLock<tempfile::TempDir> = OnceLock::new();
    REFERENCE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            assert_success(&train(dir.path(), EPOCHS));
            dir
        })
        .path()
}

/// Asserts `dir` holds the reference run: the same records and checkpoints.
fn assert_same_as_reference(dir: &Path) {
    assert_eq!(metrics_without_timings(dir), metrics_without_timings(reference()));
    for name in ["last.safetensors", "best.safetensors", "net-0.safetensors", "net-1.safetensors"] {
        assert_same_checkpoint(&dir.join(name), &reference().join(name));
    }
}

/// Starts a run and reads its stderr until a line contains `marker`; the
/// rest of its stderr is drained on a thread (returned with the log so far).
fn start_until(dir: &Path, extra: &[&str], fault: Option<&str>, marker: &str) -> (Child, String) {
    let mut command = trainer();
    command.args(train_args(dir, extra)).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(fault) = fault {
        command.env("TRAINER_FAULT", fault);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the run ended ({status}) before printing {marker:?}:\n{log}");
        }
        log.push_str(&line);
        if line.contains(marker) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
    });
    (child, log)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status();
    assert!(status.unwrap().success(), "kill -{name} failed");
}

#[test]
fn a_second_writer_is_refused_and_the_first_run_records_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = start_until(dir.path(), EPOCHS, None, "epoch 1/2: step");
    for extra in [EPOCHS.to_vec(), [EPOCHS, &["--resume"]].concat()] {
        let second = train(dir.path(), &extra);
        assert_eq!(second.status.code(), Some(1), "{}", text(&second));
        let expected = format!("is in use by pid {}", first.id());
        assert!(text(&second).contains(&expected), "{expected:?} not in:\n{}", text(&second));
    }
    let output = first.wait_with_output().unwrap();
    assert!(output.status.success());
    let records = metrics(dir.path());
    let epochs: Vec<u64> = records.iter().filter_map(|record| record["epoch"].as_u64()).collect();
    assert_eq!(epochs, vec![0, 1]);
    assert_eq!(records.len(), 3, "two epochs and the test: {records:?}");
    assert_same_as_reference(dir.path());
}

/// SIGTERM or SIGHUP in the second epoch: the step finishes, `last` is saved,
/// the exit is 0 with the resume command, and the resumed run is the reference.
fn stop_with(signal_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (child, mut log) = start_until(dir.path(), EPOCHS, None, "epoch 2/2: step");
    signal(&child, signal_name);
    let output = child.wait_with_output().unwrap();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "SIG{signal_name}: {:?}\n{log}", output.status);
    let (_, meta) = model::checkpoint::read_meta(&dir.path().join("last.safetensors")).unwrap();
    assert_eq!(meta.epoch, 1, "SIGTERM: saved inside the second epoch");
    assert!(meta.step > 20 && meta.step < 40, "step {} is not inside the second epoch", meta.step);
    assert_success(&train(dir.path(), &[EPOCHS, &["--resume"]].concat()));
    assert_same_as_reference(dir.path());
}

#[test]
fn sigterm_saves_mid_epoch_like_ctrl_c() {
    stop_with("TERM");
}

#[test]
fn sighup_saves_mid_epoch_like_ctrl_c() {
    stop_with("HUP");
}

/// SIGTERM `count` times within a few milliseconds, at a point of the
/// second epoch that varies from run to run: as a scheduler that signals every
/// process of a job while its batch script forwards the same signal. The run
/// saves once, mid-epoch, exits 0, and the resumed run is the reference.
fn repeated_sigterm(count: usize, marker: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (child, mut log) = start_until(dir.path(), EPOCHS, None, marker);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    std::thread::sleep(std::time::Duration::from_micros(u64::from(nanos % 5_000)));
    // One shell, its builtin `kill`, 2 ms apart (closer, the kernel merges them into one pending signal).
    let kills = vec![format!("kill -TERM {}", child.id()); count].join("; sleep 0.002; ");
    assert!(std::process::Command::new("sh").args(["-c", &kills]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{count} SIGTERMs: {:?}\n{log}", output.status);
    assert!(!log.contains("without saving"), "{log}");
    let (_, meta) = model::checkpoint::read_meta(&dir.path().join("last.safetensors")).unwrap();
    assert_eq!(meta.epoch, 1, "saved inside the second epoch");
    assert!(meta.step > 20 && meta.step < 40, "step {} is not inside the second epoch:\n{log}", meta.step);
    let resumed = train(dir.path(), &[EPOCHS, &["--resume"]].concat());
    assert_success(&resumed);
    // The saved steps were continued, not redone.
    assert!(text(&resumed).contains(&format!("step {} of the run", meta.step)), "{}", text(&resumed));
    assert_same_as_reference(dir.path());
}

#[test]
fn sigterm_twice_within_milliseconds_saves_once_like_a_single_one() {
    repeated_sigterm(2, "epoch 2/2: step");
}

#[test]
fn sigterm_five_times_within_milliseconds_saves_once_like_a_single_one() {
    repeated_sigterm(5, "epoch 2/2: step 6/");
}

/// A second Ctrl-C while the best checkpoint is tested quits at once, with
/// the documented code and without libtorch's text; the files stay loadable.
#[test]
fn a_second_ctrl_c_during_the_test_quits_cleanly_and_the_run_stays_loadable() {
    let dir = tempfile::tempdir().unwrap();
    // One image per batch makes the test phase long enough to be inside it.
    let mut command = trainer();
    command.args(train_args(dir.path(), &[EPOCHS, &["--eval-batch-size", "1"]].concat()));
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("LOADING [") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the run ended before its test:\n{printed}");
        printed.push_str(&line);
    }
    // The second Ctrl-C once the first is acknowledged (two at once are one pending signal).
    signal(&child, "INT");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    while !log.contains("asked to stop (Ctrl-C") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no acknowledgement of Ctrl-C:\n{log}");
        log.push_str(&line);
    }
    signal(&child, "INT");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    stderr.read_to_string(&mut log).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{:?}\n{log}", output.status);
    assert!(log.contains("Ctrl-C (SIGINT): quitting now without saving (exit 130)"), "{log}");
    for text in ["libtorch", "torch error", "backtrace", "error:"] {
        assert!(!log.to_lowercase().contains(&text.to_lowercase()), "{text:?} in:\n{log}");
    }
    assert!(!rest.contains("TEST ACCURACY"), "the test finished before the signals: {rest}");
    assert_every_checkpoint_loads(dir.path());
}

/// Kills the run with SIGKILL while it is paused inside `fault`'s window,
/// then resumes it: every file loads and the run ends as the reference.
fn kill_inside(fault: &str) {
    let dir = tempfile::tempdir().unwrap();
    let point = fault.split(':').nth(1).unwrap();
    let (mut child, log) = start_until(dir.path(), EPOCHS, Some(fault), &format!("FAULT POINT REACHED: {point}"));
    assert!(child.try_wait().unwrap().is_none(), "{fault}: the run is not paused inside the window:\n{log}");
    child.kill().unwrap(); // SIGKILL, inside the window
    child.wait().unwrap();
    assert_every_checkpoint_loads(dir.path());
    if fault == "pause:after-epoch-checkpoint:1" {
        assert!(dir.path().join("net-0.safetensors").exists() && !dir.path().join("best.safetensors").exists());
    }
    // `--resume` works whether or not a checkpoint was written before the kill.
    let output = train(dir.path(), &[EPOCHS, &["--resume"]].concat());
    assert_success(&output);
    assert_every_checkpoint_loads(dir.path());
    assert_same_as_reference(dir.path());
    let hidden = temporary_files(dir.path());
    assert!(hidden.is_empty(), "{fault}: temporary files left: {hidden:?}");
}

#[test]
fn killed_with_half_a_checkpoint_written() {
    // The first file of epoch 0, and the second file of epoch 1 (net-1, best or last).
    kill_inside("pause:checkpoint-half-written:1");
    kill_inside("pause:checkpoint-half-written:5");
}

#[test]
fn killed_right_after_a_checkpoint_is_committed() {
    // The commit renames and syncs the folder in one call (atomic-write-file):
    // the kill lands after both, before the next file.
    kill_inside("pause:checkpoint-committed:2");
}

#[test]
fn killed_between_net_n_and_best_the_best_file_is_re_established() {
    // Epoch 0 always improves on nothing: the kill lands after `net-0`, before `best` and `last`.
    kill_inside("pause:after-epoch-checkpoint:1");
}

#[test]
fn killed_mid_append_of_metrics() {
    kill_inside("pause:metrics-half-appended:2");
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_run_resumes_once_there_is_space() {
    let dir = tempfile::tempdir().unwrap();
    // A file-size limit of 2 MiB: the first checkpoint (about 39 MB) cannot be written.
    let script = format!("trap '' XFSZ; ulimit -f 2048; exec {} \"$@\"", env!("CARGO_BIN_EXE_trainer"));
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .arg("trainer")
        .args(train_args(dir.path(), EPOCHS))
        .env_remove("LD_LIBRARY_PATH")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("error: cannot write") && message.contains("File too large"), "{message}");
    assert_every_checkpoint_loads(dir.path());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".safetensors") || name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "a failed write left {leftovers:?}");
    let output = train(dir.path(), &[EPOCHS, &["--resume"]].concat());
    assert_success(&output);
    assert!(text(&output).contains("holds no checkpoint yet"), "{}", text(&output));
    assert_same_as_reference(dir.path());
}

#[test]
fn corrupt_stray_and_foreign_checkpoints_are_skipped_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    // One epoch, then the newest file is truncated and others are dropped in.
    assert_success(&train(dir.path(), &["--epochs", "1", "--save-step", "1"]));
    let last = dir.path().join("last.safetensors");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(dir.path().join("notes.safetensors"), b"not a checkpoint").unwrap();
    // Another run's newest state (more steps than this run's): tried first, refused.
    let other_seed = tempfile::tempdir().unwrap();
    assert_success(&train(other_seed.path(), &["--epochs", "2", "--seed", "5"]));
    std::fs::copy(other_seed.path().join("last.safetensors"), dir.path().join("net-9.safetensors")).unwrap();

    let output = train(dir.path(), &[EPOCHS, &["--resume"]].concat());
    assert_success(&output);
    let log = text(&output);
    assert!(log.contains("notes.safetensors") && log.contains("skipping"), "{log}");
    assert!(log.contains("net-9.safetensors") && log.contains("was trained with --seed 5"), "{log}");
    assert!(log.contains("cannot resume from") && log.contains("last.safetensors"), "{log}");
    // Then the newest that loads: `best` (epoch 0's end, as `net-0`).
    assert!(log.contains("resuming from") && log.contains("best.safetensors (epoch 1, step 20"), "{log}");
    std::fs::remove_file(dir.path().join("notes.safetensors")).unwrap();
    std::fs::remove_file(dir.path().join("net-9.safetensors")).unwrap();
    assert_same_as_reference(dir.path());

    // With nothing usable left, resuming is an error that lists why, not a silent restart.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("last.safetensors"), b"garbage").unwrap();
    let output = train(broken.path(), &[EPOCHS, &["--resume", "--force"]].concat());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("no checkpoint in") && text(&output).contains("can be resumed from"),
        "{}",
        text(&output)
    );
}

#[test]
fn resume_from_chooses_the_checkpoint_and_resume_without_any_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), EPOCHS));
    let chosen = dir.path().join("net-0.safetensors");
    let output = train(dir.path(), &[EPOCHS, &["--resume-from", &chosen.display().to_string()]].concat());
    assert_success(&output);
    assert!(text(&output).contains(&format!("resuming from {}", chosen.display())), "{}", text(&output));
    assert_same_as_reference(dir.path());

    let empty = tempfile::tempdir().unwrap();
    let output = train(empty.path(), &[EPOCHS, &["--resume"]].concat());
    assert_success(&output);
    assert!(text(&output).contains("holds no checkpoint yet") && text(&output).contains("from the beginning"));
    assert_same_as_reference(empty.path());
}

#[test]
fn a_state_that_is_not_finite_stops_the_run_and_leaves_the_good_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        trainer().args(train_args(dir.path(), EPOCHS)).env("TRAINER_FAULT", "nan:after-epoch:2").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let log = text(&output);
    assert!(log.contains("after epoch 1 (0-based), step 40 of the run, tensor `fc4.weight` holds NaN"), "{log}");
    assert!(log.contains("--resume --override-learning-rate 0.0001"), "{log}");
    // Epoch 0's files are untouched and epoch 1 left nothing behind.
    let epochs: Vec<u64> = metrics(dir.path()).iter().filter_map(|record| record["epoch"].as_u64()).collect();
    assert_eq!(epochs, vec![0]);
    assert!(!dir.path().join("net-1.safetensors").exists());
    for name in ["last.safetensors", "best.safetensors", "net-0.safetensors"] {
        let (_, meta) = model::checkpoint::read_meta(&dir.path().join(name)).unwrap();
        assert_eq!(meta.epoch, 1, "{name}");
    }
    assert_every_checkpoint_loads(dir.path());

    // Resuming with a lower learning rate is recorded where the run's history is.
    let output = train(dir.path(), &[EPOCHS, &["--resume", "--override-learning-rate", "0.0005"]].concat());
    assert_success(&output);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    let change = serde_json::json!({"epoch": 1, "step": 20, "learning_rate": {"from": 0.001, "to": 0.0005}});
    assert_eq!(config["recipe_changes"], serde_json::json!([change.clone()]));
    assert_eq!(config["recipe"]["learning_rate"], 0.001, "the recipe stays what the run was started with");
    let records = metrics(dir.path());
    assert_eq!(records[1], serde_json::json!({ "recipe_change": change }));
    let last = model::checkpoint::load(&dir.path().join("last.safetensors"), tch::Device::Cpu).unwrap();
    assert_eq!(last.optimizer.config.learning_rate, 0.0005);
    // A later resume of the same run keeps its history and needs no override.
    let output = train(dir.path(), &["--epochs", "3", "--save-step", "1", "--resume"]);
    assert_success(&output);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe_changes"], serde_json::json!([change]));
    // The rate of the steps after that resume comes from the recorded change, not the base rate.
    let last = model::checkpoint::load(&dir.path().join("last.safetensors"), tch::Device::Cpu).unwrap();
    assert_eq!((last.meta.step, last.optimizer.config.learning_rate), (60, 0.0005));
}
