//! Ensembles of checkpoints in `evaluate`, `predict`, `report`, `serve`
//! and `export`: two copies of one checkpoint answer as it does, two different
//! runs give each member's accuracy and the ensemble's, a folder of runs
//! names every run's best checkpoint, and members trained on different data
//! sets are refused naming the odd one out.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_success, run, text, train};
use serde_json::Value;

/// A second, different run: one quick epoch (the fixture has three on more images).
fn second_run(dir: &Path) -> PathBuf {
    assert_success(&train(dir, &["--epochs", "1", "--seed", "5"]));
    dir.join("best.safetensors")
}

fn evaluate(checkpoints: &[&Path]) -> Value {
    let mut args = vec!["evaluate".to_owned(), "--json".into(), "--device".into(), "cpu".into()];
    for checkpoint in checkpoints {
        args.extend(["--checkpoint".to_owned(), checkpoint.display().to_string()]);
    }
    let output = common::trainer().args(&args).output().unwrap();
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn evaluate_gives_each_members_accuracy_and_the_ensembles() {
    let fixture = common::trained_checkpoint();
    let single = evaluate(&[&fixture]);
    assert_eq!(single["members"], serde_json::json!([]), "one checkpoint is no ensemble");
    let twice = evaluate(&[&fixture, &fixture]);
    assert_eq!(twice["n_correct"], single["n_correct"], "two copies answer as one");
    assert_eq!(twice["confusion_matrix"], single["confusion_matrix"]);
    assert_eq!(twice["members"].as_array().unwrap().len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let other = second_run(dir.path());
    let pair = evaluate(&[&fixture, &other]);
    let members = pair["members"].as_array().unwrap();
    assert_eq!(members[0]["n_correct"], single["n_correct"]);
    assert_eq!(members[1]["n_correct"], evaluate(&[&other])["n_correct"]);
    assert_ne!(pair["n_correct"], members[0]["n_correct"], "the mean of two networks is a third answer");
    // A run directory names its best checkpoint; a folder of runs every run's.
    let folder = evaluate(&[dir.path()]);
    assert_eq!(folder["n_correct"], members[1]["n_correct"]);
    let sweep = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        let run = sweep.path().join("recipe").join(name);
        std::fs::create_dir_all(&run).unwrap();
        for file in ["best.safetensors", "config.json", "metrics.jsonl"] {
            std::fs::copy(dir.path().join(file), run.join(file)).unwrap();
        }
    }
    let both = evaluate(&[sweep.path()]);
    assert_eq!((both["members"].as_array().unwrap().len(), &both["n_correct"]), (2, &members[1]["n_correct"]));
}

#[test]
fn members_of_different_data_sets_are_refused_naming_the_odd_one_out() {
    let dir = tempfile::tempdir().unwrap();
    let network = model::Network::new(model::Architecture::Seed, tch::Device::Cpu).unwrap();
    let adam = model::Adam::new(&network.trainable(), model::AdamConfig::default()).unwrap();
    let fashion = datasets::by_name("fashion-mnist").unwrap();
    let class_names = fashion.class_names.iter().map(|name| name.to_string()).collect();
    let meta = model::CheckpointMeta {
        dataset: model::DatasetMeta { name: fashion.name.into(), class_names },
        ..model::CheckpointMeta::default()
    };
    let fashion = dir.path().join("fashion.safetensors");
    model::checkpoint::save(&fashion, &network, &adam, None, &meta).unwrap();
    let fixture = common::trained_checkpoint();
    let (fixture_text, fashion_text) = (fixture.display().to_string(), fashion.display().to_string());
    let runs = dir.path().display().to_string();
    let serve = ["serve", "--addr", "127.0.0.1:0", "--runs", &runs];
    for command in [&["evaluate"][..], &["predict", "--images", "unread.idx"], &serve] {
        let mut args = command.to_vec();
        args.extend(["--checkpoint", &fixture_text, "--checkpoint", &fashion_text]);
        let output = run(&args);
        assert!(!output.status.success());
        let message = text(&output);
        assert!(
            message.contains(&format!("{fashion_text}: trained on fashion-mnist"))
                && message.contains(&format!("but {fixture_text} on mnist"))
                && message.contains("must share a data set"),
            "{command:?}: {message}"
        );
    }
}

#[test]
fn predict_report_and_export_run_the_ensemble() {
    let fixture = common::trained_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let other = second_run(&dir.path().join("run"));
    let (fixture_text, other_text) = (fixture.display().to_string(), other.display().to_string());
    let images = common::data_dir().join("mnist/t10k-images-idx3-ubyte.gz").display().to_string();
    let predict = |checkpoints: &[&str]| -> Vec<Value> {
        let mut args = vec!["predict", "--json", "--images", &images, "--device", "cpu"];
        for checkpoint in checkpoints {
            args.extend(["--checkpoint", checkpoint]);
        }
        let output = run(&args);
        assert_success(&output);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .take(50)
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let single = predict(&[&fixture_text]);
    let twice = predict(&[&fixture_text, &fixture_text]);
    assert_eq!(single.len(), 50);
    for (one, two) in single.iter().zip(&twice) {
        assert!(one["class"].is_u64(), "{one}");
        assert_eq!(one["class"], two["class"], "{one} vs {two}");
        let (p, q) = (one["top"][0]["probability"].as_f64().unwrap(), two["top"][0]["probability"].as_f64().unwrap());
        assert!((p - q).abs() < 1e-5, "{one} vs {two}");
    }
    assert_ne!(predict(&[&fixture_text, &other_text]), single);

    let out = dir.path().join("report");
    let output = run(&[
        "report",
        "--checkpoint",
        &fixture_text,
        "--checkpoint",
        &other_text,
        "--out",
        &out.display().to_string(),
        "--save-dir",
        &dir.path().join("no-run").display().to_string(),
    ]);
    assert_success(&output);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("Ensemble of 2 checkpoints") && page.contains("Members of the ensemble"), "{page}");
    assert!(page.contains(&fixture_text) && page.contains(&other_text));
    assert!(std::fs::read(out.join("confusion.png")).unwrap().starts_with(b"\x89PNG"));

    // One TorchScript graph holding both members, answering as the ensemble.
    let module_path = dir.path().join("ensemble.pt");
    let export = |format: &str, out: &Path| {
        let out = out.display().to_string();
        run(&["export", "--checkpoint", &fixture_text, "--checkpoint", &other_text, "--format", format, "--out", &out])
    };
    assert_success(&export("torchscript", &module_path));
    let module = tch::CModule::load(&module_path).unwrap();
    let loaded: Vec<model::Network> = [&fixture, &other]
        .iter()
        .map(|path| model::load_for_inference(path, tch::Device::Cpu).unwrap().checkpoint.network)
        .collect();
    let ensemble = model::Ensemble::new(loaded).unwrap();
    let batch = tch::Tensor::rand([4, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
    let traced = tch::no_grad(|| module.forward_ts(&[&batch])).unwrap();
    let ours = tch::no_grad(|| model::Classifier::logits(&ensemble, &batch)).unwrap();
    assert!((traced - ours).abs().max().double_value(&[]) < 1e-5);
    let onnx = export("onnx", &dir.path().join("e.onnx"));
    assert!(text(&onnx).contains("--format onnx exports one checkpoint, 2 were given"), "{}", text(&onnx));
}

#[test]
fn serve_draws_with_the_ensemble_and_answers_as_predict_does() {
    let fixture = common::trained_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let other = second_run(&dir.path().join("run"));
    let (fixture_text, other_text) = (fixture.display().to_string(), other.display().to_string());
    let images_path = common::data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
    let images = idx::mnist::load_images(&images_path).unwrap();
    let image: Vec<f32> = images.index_axis(ndarray::Axis(0), 0).iter().copied().collect();

    let output = run(&[
        "predict",
        "--json",
        "--device",
        "cpu",
        "--images",
        &images_path.display().to_string(),
        "--checkpoint",
        &fixture_text,
        "--checkpoint",
        &other_text,
    ]);
    assert_success(&output);
    let first_line = String::from_utf8_lossy(&output.stdout).lines().next().unwrap().to_owned();
    let expected: Value = serde_json::from_str(&first_line).unwrap();

    let runs = dir.path().join("no-runs");
    std::fs::create_dir(&runs).unwrap();
    let flags = ["--checkpoint", &fixture_text, "--checkpoint", &other_text];
    let (_server, line) = common::start_serve_with(&runs, &flags);
    let address = common::served_address(&line);
    let model = common::get_json(&address, "/api/model");
    assert_eq!(model["checkpoints"].as_array().map(Vec::len), Some(2), "{model}");
    assert!(model["name"].as_str().unwrap().contains("an ensemble of 2 checkpoints"), "{model}");
    let body = serde_json::json!({ "pixels": image }).to_string();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, answer) = common::request(&address, &head, body.as_bytes());
    assert!(status.contains(" 200 "), "{status}: {answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let predicted = expected["top"].as_array().unwrap();
    assert_eq!(predicted.len(), 3, "{expected}");
    for (served, predicted) in answer["predictions"].as_array().unwrap().iter().zip(predicted) {
        assert_eq!(served["class"], predicted["class"], "serve {served} vs predict {predicted}");
        let difference = served["probability"].as_f64().unwrap() - predicted["probability"].as_f64().unwrap();
        assert!(difference.abs() < 1e-5, "serve {served} vs predict {predicted}");
    }
}
