//! `trainer export`: TorchScript and ONNX files that PyTorch and onnxruntime
//! (in the project's venv, from `cargo xtask setup`) load and that give the
//! Rust network's logits within 1e-5, for both architectures, at a batch
//! size other than the one traced.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_success, run, text};
use model::checkpoint::{self, CheckpointMeta};
use model::{Adam, AdamConfig, Architecture, Network};
use tch::{Device, Kind, Tensor};

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask setup` (it installs torch, onnx and onnxruntime)",
        python.display()
    );
    python
}

/// Loads `torchscript` with torch.jit.load and `onnx` with onnxruntime and
/// prints both models' logits for the `[n, 1, 28, 28]` float32 images in `images`.
const LOAD_BOTH: &str = r#"
import json, sys
import numpy as np, onnxruntime, torch
torchscript, onnx, images, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.fromfile(images, dtype=np.float32).reshape(n, 1, 28, 28)
with torch.no_grad():
    scripted = torch.jit.load(torchscript)(torch.from_numpy(x)).numpy()
session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
exported = session.run(["logits"], {"images": x})[0]
print(json.dumps({"torchscript": scripted.tolist(), "onnx": exported.tolist()}))
"#;

fn trained_checkpoint(dir: &Path, architecture: Architecture) -> (PathBuf, Network) {
    tch::manual_seed(7);
    let network = Network::new(architecture, Device::Cpu).unwrap();
    // Move the moving averages away from their initial values so that they matter.
    tch::no_grad(|| drop(network.forward(&Tensor::rand([32, 28, 28], (Kind::Float, Device::Cpu)), true).unwrap()));
    let adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    let path = dir.join(format!("{}.safetensors", architecture.name()));
    checkpoint::save(&path, &network, &adam, None, &CheckpointMeta::default()).unwrap();
    (path, network)
}

#[test]
fn exports_load_in_python_and_give_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let python = venv_python();
    for architecture in Architecture::ALL {
        let (path, network) = trained_checkpoint(dir.path(), architecture);
        let (torchscript, onnx) = (
            dir.path().join(format!("{}.pt", architecture.name())),
            dir.path().join(format!("{}.onnx", architecture.name())),
        );
        for (format, out) in [("torchscript", &torchscript), ("onnx", &onnx)] {
            let output = run(&[
                "export",
                "--checkpoint",
                &path.display().to_string(),
                "--format",
                format,
                "--out",
                &out.display().to_string(),
            ]);
            assert_success(&output);
        }
        let n = 7;
        let images = Tensor::rand([n, 1, 28, 28], (Kind::Float, Device::Cpu));
        let pixels = Vec::<f32>::try_from(images.flatten(0, -1)).unwrap();
        let images_path = dir.path().join("images.f32");
        std::fs::write(&images_path, pixels.iter().flat_map(|value| value.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let output = Command::new(&python)
            .args(["-c", LOAD_BOTH])
            .arg(&torchscript)
            .arg(&onnx)
            .arg(&images_path)
            .arg(n.to_string())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let logits: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let ours = tch::no_grad(|| network.forward(&images, false).unwrap());
        for format in ["torchscript", "onnx"] {
            let rows = logits[format].as_array().unwrap();
            assert_eq!(rows.len(), n as usize, "{format}: batch size");
            for (image, row) in rows.iter().enumerate() {
                for (class, value) in row.as_array().unwrap().iter().enumerate() {
                    let expected = ours.double_value(&[image as i64, class as i64]);
                    let found = value.as_f64().unwrap();
                    assert!(
                        (found - expected).abs() < 1e-5,
                        "{architecture:?} {format}: image {image} class {class}: {found} vs {expected}"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_checkpoints_and_a_missing_python_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_checkpoint = dir.path().join("notes.safetensors");
    std::fs::write(&not_checkpoint, b"not a checkpoint").unwrap();
    let out = dir.path().join("out.pt");
    for format in ["torchscript", "onnx"] {
        let output = run(&[
            "export",
            "--checkpoint",
            &not_checkpoint.display().to_string(),
            "--format",
            format,
            "--out",
            &out.display().to_string(),
        ]);
        assert!(!output.status.success());
        assert!(text(&output).contains("notes.safetensors: not a safetensors file"), "{format}: {}", text(&output));
        assert!(!out.exists());
    }
    let (path, _) = trained_checkpoint(dir.path(), Architecture::Intended);
    let output = common::trainer()
        .env("TRAINER_PYTHON", "/nonexistent/python3")
        .args(["export", "--checkpoint", &path.display().to_string(), "--format", "onnx", "--out"])
        .arg(dir.path().join("out.onnx"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("/nonexistent/python3 does not exist") && message.contains("cargo xtask setup"),
        "{message}"
    );
}

/// The documented Python example (`scripts/classify_with_export.py`) reads
/// the test set with either export and agrees with `trainer evaluate`.
#[test]
fn the_documented_python_example_classifies_like_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::trained_checkpoint();
    let checkpoint = fixture.display().to_string();
    let evaluate = run(&["evaluate", "--checkpoint", &checkpoint, "--device", "cpu", "--json"]);
    assert_success(&evaluate);
    let evaluation: serde_json::Value = serde_json::from_slice(&evaluate.stdout).unwrap();
    let n_correct = evaluation["n_correct"].as_u64().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/classify_with_export.py");
    let mnist = common::data_dir().join("mnist");
    for (format, file) in [("torchscript", "net.pt"), ("onnx", "net.onnx")] {
        let out = dir.path().join(file);
        let output =
            run(&["export", "--checkpoint", &checkpoint, "--format", format, "--out", &out.display().to_string()]);
        assert_success(&output);
        let output = Command::new(venv_python())
            .arg(&script)
            .arg(&out)
            .arg(mnist.join("t10k-images-idx3-ubyte.gz"))
            .arg(mnist.join("t10k-labels-idx1-ubyte.gz"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 10_000);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let correct: u64 = stderr.split('(').nth(1).and_then(|rest| rest.split('/').next()).unwrap().parse().unwrap();
        // Float rounding may flip an image whose two best logits tie to within 1e-6.
        assert!(correct.abs_diff(n_correct) <= 2, "{format}: {correct} correct, evaluate says {n_correct}");
    }
}
