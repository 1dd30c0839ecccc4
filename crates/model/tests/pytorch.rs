//! A checkpoint loads into a plain PyTorch module (scripts/load_checkpoint_in_pytorch.py)
//! and gives the same logits (the weights' average's, for a checkpoint that
//! holds one). Runs with the project's venv Python
//! (`.libtorch/venv/bin/python`, which `cargo xtask setup` gives torch and
//! safetensors) or the Python in `CHECKPOINT_PYTHON`; fails, saying so, when
//! neither exists.

use std::process::Command;

use model::checkpoint::{self, CheckpointMeta};
use model::{Adam, AdamConfig, Architecture, Ema, Network};
use tch::{Device, Kind, Tensor};

#[test]
fn pytorch_loads_the_checkpoint_and_computes_the_same_logits() {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/load_checkpoint_in_pytorch.py");
    let script_text = std::fs::read_to_string(&script).unwrap();
    assert!(script_text.contains("load_state_dict(model_tensors, strict=True)"));
    let python = std::env::var_os("CHECKPOINT_PYTHON").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/venv/bin/python"),
        std::path::PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} does not exist: run `cargo xtask setup` (it installs torch and safetensors there) \
         or set CHECKPOINT_PYTHON to a Python with torch and safetensors",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    for (architecture, averaged) in [
        (Architecture::Intended, false),
        (Architecture::Seed, false),
        (Architecture::Vgg, false),
        (Architecture::Strided, false),
        (Architecture::Intended, true),
    ] {
        tch::manual_seed(30);
        let network = Network::new(architecture, Device::Cpu).unwrap();
        // Move the moving averages away from their initial values so that they matter.
        tch::no_grad(|| drop(network.forward(&Tensor::rand([32, 28, 28], (Kind::Float, Device::Cpu)), true).unwrap()));
        let adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
        // An average that differs from the network: a fresh one moved half way towards it.
        let ema = averaged.then(|| {
            let mut ema = Ema::new(0.5, &Network::new(architecture, Device::Cpu).unwrap()).unwrap();
            ema.update(&network, 100).unwrap();
            ema
        });
        let path = dir.path().join(format!("{}-{averaged}.safetensors", architecture.name()));
        checkpoint::save(&path, &network, &adam, ema.as_ref(), &CheckpointMeta::default()).unwrap();

        let images = Tensor::rand([5, 28, 28], (Kind::Float, Device::Cpu));
        let pixels = Vec::<f32>::try_from(images.flatten(0, -1)).unwrap();
        let bytes: Vec<u8> = pixels.iter().flat_map(|value| value.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![5, 28, 28], &bytes).unwrap();
        let images_path = dir.path().join("images.safetensors");
        std::fs::write(&images_path, safetensors::serialize([("images", view)], None).unwrap()).unwrap();

        let output = Command::new(&python).arg(&script).arg(&path).arg("--images").arg(&images_path).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let logits: Vec<Vec<f64>> = serde_json::from_slice(&output.stdout).unwrap();
        let ours = ema.as_ref().map_or(&network, Ema::network).forward(&images, false).unwrap();
        let trained = network.forward(&images, false).unwrap();
        assert_eq!(averaged, (&ours - &trained).abs().max().double_value(&[]) > 1e-3, "the average is another network");
        for (image_idx, row) in logits.iter().enumerate() {
            for (class, &value) in row.iter().enumerate() {
                let expected = ours.double_value(&[image_idx as i64, class as i64]);
                assert!(
                    (value - expected).abs() < 1e-4,
                    "{architecture:?} image {image_idx} class {class}: {value} vs {expected}"
                );
            }
        }
    }
}
