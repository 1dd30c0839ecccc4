//! Resuming, interrupting and repeating runs: on the CPU with a fixed seed
//! and thread count, every path to the same epoch gives the same weights,
//! optimizer state and metrics (timings aside).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    assert_every_checkpoint_loads, assert_same_checkpoint, assert_success, metrics_without_timings, temporary_files,
    text, train, train_args, trainer,
};

/// The uninterrupted reference: 2 epochs in one go (made once, shared).
fn reference() -> &'static Path {
    static REFERENCE: OnceLock<tempfile::TempDir> = OnceLock::new();
    REFERENCE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            assert_success(&train(dir.path(), &["--epochs", "2"]));
            dir
        })
        .path()
}

fn assert_same_run(left: &Path, right: &Path) {
    assert_eq!(metrics_without_timings(left), metrics_without_timings(right));
    for name in ["last.safetensors", "best.safetensors"] {
        assert_same_checkpoint(&left.join(name), &right.join(name));
    }
}

#[test]
fn the_same_seed_gives_identical_metrics_and_weights() {
    let again = tempfile::tempdir().unwrap();
    assert_success(&train(again.path(), &["--epochs", "2"]));
    assert_same_run(reference(), again.path());
    // And another seed gives another run.
    let other = tempfile::tempdir().unwrap();
    assert_success(&train(other.path(), &["--epochs", "2", "--seed", "1"]));
    assert_ne!(metrics_without_timings(reference()), metrics_without_timings(other.path()));
}

#[test]
fn one_epoch_then_resume_equals_two_epochs_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), &["--epochs", "1"]));
    let output = train(dir.path(), &["--epochs", "2", "--resume"]);
    assert_success(&output);
    assert!(text(&output).contains("resuming from"), "{}", text(&output));
    assert_same_run(reference(), dir.path());
}

/// Starts a 2-epoch run in `dir` with `extra` flags, sends `signal` once
/// the second epoch is under way, checks that it saved inside that epoch,
/// then resumes it to the end.
fn interrupt_in_the_second_epoch_then_resume(dir: &Path, extra: &[&str], signal: &str) {
    let flags: Vec<&str> = ["--epochs", "2"].iter().chain(extra).copied().collect();
    let mut child =
        trainer().args(train_args(dir, &flags)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Wait until the second epoch is under way (its progress lines), then interrupt.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("epoch 2/2: step") {
            let status = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
            assert!(status.success());
            break;
        }
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}\n{log}{stdout}", output.status);
    assert!(stdout.contains("interrupted at epoch 1"), "{stdout}");
    assert!(stdout.contains("resume with: ") && stdout.contains("--resume"), "{stdout}");
    let (_, meta) = model::checkpoint::read_meta(&dir.join("last.safetensors")).unwrap();
    assert_eq!(meta.epoch, 1, "the checkpoint is inside the second epoch");
    assert!(meta.step > 20 && meta.step < 40, "step {} is not inside the second epoch", meta.step);
    let resumed: Vec<&str> = flags.iter().copied().chain(["--resume"]).collect();
    assert_success(&train(dir, &resumed));
}

#[test]
fn ctrl_c_saves_mid_epoch_and_the_resumed_run_equals_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    interrupt_in_the_second_epoch_then_resume(dir.path(), &[], "-INT");
    assert_same_run(reference(), dir.path());
}

#[test]
fn a_run_under_a_schedule_and_a_weights_average_resumed_mid_epoch_equals_the_uninterrupted_one() {
    // Warm-up then cosine: the rate differs at every step, so a step counted
    // wrong shows; the average's decay depends on the step too.
    let recipe = ["--schedule", "warmup:1:cosine:2,0.1", "--ema", "0.99"];
    let uninterrupted = tempfile::tempdir().unwrap();
    let flags: Vec<&str> = ["--epochs", "2"].iter().chain(&recipe).copied().collect();
    assert_success(&train(uninterrupted.path(), &flags));
    let dir = tempfile::tempdir().unwrap();
    interrupt_in_the_second_epoch_then_resume(dir.path(), &recipe, "-TERM");
    assert_same_run(uninterrupted.path(), dir.path());
    for name in ["last.safetensors", "best.safetensors"] {
        let loaded = model::checkpoint::load(&dir.path().join(name), tch::Device::Cpu).unwrap();
        assert_eq!(loaded.ema.map(|ema| ema.decay()), Some(0.99), "{name} holds the average");
    }
    let records = common::metrics(dir.path());
    let rates: Vec<f64> = records.iter().filter_map(|record| record["learning_rate"].as_f64()).collect();
    assert!(rates.len() == 2 && rates[1] < rates[0] && rates[1] >= 0.0001, "{rates:?}");
    // The recipe made a difference: the seed's recipe gives another run.
    assert_ne!(metrics_without_timings(reference()), metrics_without_timings(dir.path()));
    // The test record is the average's accuracy, which `evaluate` reproduces from the best checkpoint.
    let test = records.iter().find_map(|record| record.get("test")).unwrap();
    let best = dir.path().join("best.safetensors").display().to_string();
    let evaluated = common::run(&["evaluate", "--checkpoint", &best, "--device", "cpu", "--json"]);
    assert_success(&evaluated);
    let evaluated: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    assert_eq!(evaluated["n_correct"], test["n_correct"], "{evaluated}");
}

#[test]
fn a_bf16_run_resumed_mid_epoch_equals_the_uninterrupted_one() {
    // The bf16 step computes with the optimizer's bf16 shadows of the dense
    // weights, which checkpoints do not hold: the resumed run rounds them
    // afresh from the restored fp32 weights and must land on the same bits.
    let recipe = ["--precision", "bf16"];
    if !model::network::cpu_has_native_bf16() {
        let dir = tempfile::tempdir().unwrap();
        let output = train(dir.path(), &["--epochs", "1", recipe[0], recipe[1]]);
        assert!(!output.status.success(), "bf16 trained on a CPU without native bf16");
        assert!(text(&output).contains("this CPU has no native bf16"), "{}", text(&output));
        return;
    }
    let uninterrupted = tempfile::tempdir().unwrap();
    assert_success(&train(uninterrupted.path(), &["--epochs", "2", recipe[0], recipe[1]]));
    let dir = tempfile::tempdir().unwrap();
    interrupt_in_the_second_epoch_then_resume(dir.path(), &recipe, "-TERM");
    assert_same_run(uninterrupted.path(), dir.path());
    // The precision made a difference: the fp32 run is another run.
    assert_ne!(metrics_without_timings(reference()), metrics_without_timings(dir.path()));
}

#[test]
fn the_fused_tail_is_part_of_the_recipe_and_resumes_bit_for_bit() {
    let uninterrupted = tempfile::tempdir().unwrap();
    assert_success(&train(uninterrupted.path(), &["--epochs", "2", "--fused-tail"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(uninterrupted.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["fused_tail"], true, "{config}");
    // The fused pass rounds otherwise: the weights are not the default run's.
    let fused = model::checkpoint::load(&uninterrupted.path().join("last.safetensors"), tch::Device::Cpu).unwrap();
    let plain = model::checkpoint::load(&reference().join("last.safetensors"), tch::Device::Cpu).unwrap();
    let differing = fused.network.named_tensors().into_iter().zip(plain.network.named_tensors());
    assert!(differing.filter(|((_, a), (_, b))| !a.equal(b)).count() > 0, "--fused-tail changed no weight");
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), &["--epochs", "1", "--fused-tail"]));
    let without = train(dir.path(), &["--epochs", "2", "--fused-tail", "off", "--resume"]);
    assert!(!without.status.success(), "resumed with --fused-tail off");
    assert!(text(&without).contains("was started with fused_tail = true"), "{}", text(&without));
    // Without the flag (`auto`), a resumed run computes as it started.
    assert_success(&train(dir.path(), &["--epochs", "2", "--resume"]));
    assert_same_run(uninterrupted.path(), dir.path());
}

#[test]
fn kill_9_at_any_moment_leaves_every_checkpoint_loadable_and_the_run_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let args = train_args(dir.path(), &["--epochs", "3", "--save-step", "1"]);
    // Kill at several moments, including while checkpoints are being written.
    for (round, delay_ms) in [2500u64, 4100, 5300].into_iter().enumerate() {
        let mut round_args = args.clone();
        // As a scheduler's job script would: resume whenever a run was started (`config.json`),
        // whatever the kill left of its checkpoints (`net-0` and `best` can exist without `last`).
        if round > 0 && dir.path().join("config.json").exists() {
            round_args.push("--resume".to_owned());
        }
        let mut child = trainer().args(&round_args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_millis(delay_ms);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap_or(()); // SIGKILL
        child.wait().unwrap();
        assert_every_checkpoint_loads(dir.path());
    }
    // Whatever was left, the run resumes and finishes with each epoch recorded once.
    let resume = if dir.path().join("config.json").exists() { vec!["--resume"] } else { vec![] };
    let output = train(dir.path(), &[&["--epochs", "3", "--save-step", "1"][..], &resume].concat());
    assert_success(&output);
    let epochs: Vec<u64> =
        metrics_without_timings(dir.path()).iter().filter_map(|record| record["epoch"].as_u64()).collect();
    assert_eq!(epochs, vec![0, 1, 2]);
    let leftovers = temporary_files(dir.path());
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn resuming_with_another_recipe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), &["--epochs", "1"]));
    let output = train(dir.path(), &["--epochs", "2", "--resume", "--batch-size", "25"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("batch_size = 50, but this command gives 25"), "{}", text(&output));
    let output = train(dir.path(), &["--epochs", "2", "--resume", "--network", "seed"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("network"), "{}", text(&output));
}
