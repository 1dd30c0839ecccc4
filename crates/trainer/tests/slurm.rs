//! The sweep scripts on a real Slurm (Debian 12's slurm-wlm 22.05 and
//! munge): a private one-node cluster in a temporary folder
//! (`scripts/slurm/one-node-cluster.sh`) runs a 3-task array submitted by
//! `scripts/slurm/submit.sh`; one task is requeued mid-epoch and resumes
//! from the step it saved, its records and checkpoints equal to an
//! uninterrupted run's; one is cancelled and stays loadable and resumable;
//! the summary job's numbers are the runs' own; no daemon is left behind.
//! Needs root and the packages (`cargo xtask setup --slurm`); without them it
//! fails saying so.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{assert_every_checkpoint_loads, assert_same_checkpoint, assert_success, metrics_without_timings, text};

/// Three seeds of one tiny recipe: 60 steps an epoch, three epochs.
const GRID: &str = r#"{"seeds": [0, 1, 2],
    "flags": ["--epochs", "3", "--train-images", "3000", "--validation-size", "500",
              "--train-accuracy-images", "100", "--device", "cpu"],
    "recipes": [{"name": "tiny"}]}"#;
const STEPS_PER_EPOCH: u64 = 60;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails, saying what to install, unless Slurm, munge and root are there.
fn require_slurm() {
    let missing: Vec<&str> = ["munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel"]
        .into_iter()
        .filter(|program| !on_path(program))
        .collect();
    assert!(
        missing.is_empty(),
        "the Slurm test needs {missing:?} on PATH: as root, `cargo xtask setup --slurm` installs Debian's slurm-wlm and munge"
    );
    let root = Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    assert!(root, "the Slurm test starts slurmd and munged: run it as root");
}

/// A private one-node cluster, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new().prefix("slurm-").tempdir().unwrap();
        let output = Command::new(common::repository().join("scripts/slurm/one-node-cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_success(&output);
        Cluster { dir }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env("SLURM_CONF", self.dir.path().join("slurm.conf"))
            .env("TRAINER", env!("CARGO_BIN_EXE_trainer"))
            .env_remove("LD_LIBRARY_PATH")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().unwrap()
    }

    /// The daemons' process ids, from their pid files.
    fn pids(&self) -> Vec<u32> {
        ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"]
            .iter()
            .filter_map(|file| std::fs::read_to_string(self.dir.path().join(file)).ok())
            .filter_map(|text| text.trim().parse().ok())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(common::repository().join("scripts/slurm/one-node-cluster.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Waits until `done` holds, polling; fails naming `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The step of the epoch a task's log says it saved at: `interrupted at epoch E (0-based), step K of N`.
fn saved_position(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().find(|line| line.starts_with("interrupted at epoch"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    Some((words[3].parse().ok()?, words[6].parse().ok()?))
}

/// Signals a task once it is in its second epoch and waits until it has saved; returns where.
fn stop_mid_epoch(cluster: &Cluster, log: &Path, command: &[&str]) -> (u64, u64) {
    wait_for(&format!("{} to reach its second epoch", log.display()), Duration::from_secs(300), || {
        read(log).contains("epoch 2/3: step")
    });
    assert_success(&cluster.run(command[0], &command[1..]));
    wait_for(&format!("{} to save", log.display()), Duration::from_secs(60), || saved_position(&read(log)).is_some());
    saved_position(&read(log)).unwrap()
}

/// Trains task `index` on this machine, outside Slurm, as the array does.
fn local_task(grid: &Path, index: usize, sweep: &Path) -> Output {
    common::trainer()
        .args(["sweep", "task", "--grid"])
        .arg(grid)
        .args(["--index", &index.to_string(), "--sweep-dir"])
        .arg(sweep)
        .args(["--", "--threads", "1"])
        .output()
        .unwrap()
}

#[test]
fn a_sweep_runs_as_a_job_array_survives_requeue_and_cancel_and_is_summarised() {
    require_slurm();
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let grid = work.path().join("grid.json");
    std::fs::write(&grid, GRID).unwrap();
    let sweep = work.path().join("sweep");
    let submitted = cluster
        .command(common::repository().join("scripts/slurm/submit.sh"))
        .arg(&grid)
        .arg(&sweep)
        .arg("--cpus-per-task=1")
        .output()
        .unwrap();
    assert_success(&submitted);
    // "array job N (3 tasks), summary job M"
    let said = text(&submitted);
    let words: Vec<&str> = said.split_whitespace().collect();
    let (array, summary) = (words[2].to_owned(), words[words.len() - 1].to_owned());
    assert_eq!(words[3], "(3", "{said}");

    // Task 1 requeued mid-epoch: it saves, waits (released at once here), and resumes from that step.
    let log1 = sweep.join(format!("logs/{array}_1.out"));
    let task1 = format!("{array}_1");
    let (epoch, step) = stop_mid_epoch(&cluster, &log1, &["scontrol", "requeue", &task1]);
    assert!(epoch == 1 && step > 0 && step < STEPS_PER_EPOCH, "saved at epoch {epoch}, step {step}");
    wait_for("the requeued task to be released", Duration::from_secs(60), || {
        cluster.run("scontrol", &["update", &format!("JobId={task1}"), "StartTime=now"]).status.success()
    });
    // Task 2 cancelled mid-epoch: it saves and stays stopped.
    let log2 = sweep.join(format!("logs/{array}_2.out"));
    let (epoch2, step2) = stop_mid_epoch(&cluster, &log2, &["scancel", &format!("{array}_2")]);
    assert!(epoch2 >= 1 && step2 > 0 && step2 < STEPS_PER_EPOCH, "saved at epoch {epoch2}, step {step2}");

    // The summary job runs once every task has ended.
    wait_for("the summary job", Duration::from_secs(600), || {
        let queue = cluster.run("squeue", &["--noheader", "--format=%i"]);
        sweep.join("summary.json").is_file() && !String::from_utf8_lossy(&queue.stdout).contains(&summary)
    });
    let resumed_at = format!("step {} of the run", STEPS_PER_EPOCH * epoch + step);
    assert!(read(&log1).contains(&resumed_at), "task 1 did not resume at {resumed_at}:\n{}", read(&log1));
    assert!(read(&log1).contains("attempt 2"), "{}", read(&log1));

    // The requeued run equals an uninterrupted run of the same task.
    let reference = work.path().join("reference");
    assert_success(&local_task(&grid, 1, &reference));
    let (run1, reference1) = (sweep.join("tiny/seed-1"), reference.join("tiny/seed-1"));
    assert_eq!(metrics_without_timings(&run1), metrics_without_timings(&reference1));
    for file in ["best.safetensors", "last.safetensors"] {
        assert_same_checkpoint(&run1.join(file), &reference1.join(file));
    }

    // The summary's numbers are each run's own.
    let summary_json: serde_json::Value = serde_json::from_str(&read(&sweep.join("summary.json"))).unwrap();
    for run in summary_json["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let records = common::metrics(&sweep.join(name));
        let test = records.iter().find_map(|record| record.get("test")).map(|test| test["accuracy"].clone());
        assert_eq!(run["test_accuracy"], test.unwrap_or(serde_json::Value::Null), "{name}");
        let expected_state = if name == "tiny/seed-2" { "stopped" } else { "finished" };
        assert_eq!(run["state"], expected_state, "{name}");
    }
    assert_eq!(summary_json["groups"][0]["n_finished"], 2);
    assert!(read(&sweep.join("curves.svg")).starts_with("<svg"));

    // The cancelled run loads and resumes to the end.
    let run2 = sweep.join("tiny/seed-2");
    assert_every_checkpoint_loads(&run2);
    assert_success(&local_task(&grid, 2, &sweep));
    let after = common::run(&["runs", "--json", &sweep.display().to_string()]);
    assert_success(&after);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after["groups"][0]["n_finished"], 3, "{after}");

    // No daemon is left behind.
    let pids = cluster.pids();
    assert_eq!(pids.len(), 3, "munged, slurmctld and slurmd wrote their pid files");
    drop(cluster);
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} still runs after the cluster stopped");
    }
}
