//! `trainer data-info` end to end on the embedded MNIST.

use std::path::PathBuf;
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).env_remove("LD_LIBRARY_PATH").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn data_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").display().to_string()
}

#[test]
fn json_report_has_the_seed_split_and_sane_statistics() {
    let output = trainer(&["data-info", "--json", "--device", "cpu", "--data-dir", &data_dir()]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["dataset"], "mnist");
    assert!(report["device"].as_str().unwrap().starts_with("cpu"));
    assert_eq!(report["train"]["n_images"], 55_000);
    assert_eq!(report["validation"]["n_images"], 5_000);
    assert_eq!(report["test"]["n_images"], 10_000);
    assert_eq!(report["test"]["image_size"], serde_json::json!([28, 28]));
    let histogram: Vec<u64> =
        report["train"]["label_histogram"].as_array().unwrap().iter().map(|count| count.as_u64().unwrap()).collect();
    assert_eq!(histogram.iter().sum::<u64>(), 55_000);
    // MNIST's well-known normalisation constants: mean 0.1307, std 0.3081 over the 60,000 training images.
    let mean = report["train"]["pixel_mean"].as_f64().unwrap();
    let std = report["train"]["pixel_std"].as_f64().unwrap();
    assert!((mean - 0.1307).abs() < 0.001 && (std - 0.3081).abs() < 0.001, "{mean} {std}");
}

#[test]
fn text_report_and_validation_size() {
    let output = trainer(&["data-info", "--validation-size", "10000", "--data-dir", &data_dir()]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("train:  50000 images of 28x28"), "{stdout}");
    assert!(stdout.contains("validation:  10000 images"), "{stdout}");
    assert!(stdout.contains("device: "), "{stdout}");
}

#[test]
fn missing_data_points_to_fetch_data() {
    let empty = tempfile::tempdir().unwrap();
    let output = trainer(&["data-info", "--data-dir", empty.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("cargo xtask fetch-data --dataset mnist"), "{message}");
    assert!(message.contains("train-images-idx3-ubyte.gz: cannot open"), "{message}");
}

#[test]
fn cuda_is_used_when_asked_or_the_reason_is_given() {
    let output = trainer(&["data-info", "--device", "cuda:0", "--data-dir", &data_dir()]);
    if output.status.success() {
        assert!(String::from_utf8_lossy(&output.stdout).contains("device: cuda:0"), "{}", text(&output));
    } else {
        assert!(text(&output).contains("cuda:0 requested, but CUDA is unavailable: "), "{}", text(&output));
    }
    let output = trainer(&["data-info", "--device", "tpu"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("expected auto, cpu, cuda or cuda:N"), "{}", text(&output));
}
