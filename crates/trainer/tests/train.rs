//! A real training run, end to end: 2 epochs on 3,000 MNIST images with the
//! seed's augmentation; then `evaluate` on what it wrote.

mod common;

use common::{assert_success, data_dir, metrics, run, text, train};
use model::checkpoint;

#[test]
fn two_epochs_learn_write_every_record_and_restore_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let save_dir = dir.path().join("run");
    let output = train(
        &save_dir,
        &[
            "--train-images",
            "3000",
            "--validation-size",
            "5000",
            "--epochs",
            "2",
            "--display-step",
            "1",
            "--save-step",
            "1",
            "--keep",
            "1",
        ],
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);

    // The records: two epochs, then the test result of the best epoch.
    let records = metrics(&save_dir);
    assert_eq!(records.len(), 3, "{records:?}");
    for (epoch, record) in records[..2].iter().enumerate() {
        assert_eq!(record["epoch"], epoch as u64);
        assert_eq!(record["step"], 60 * (epoch as u64 + 1), "3,000 images / 50 = 60 steps an epoch");
        for key in ["loss", "train_accuracy", "validation_accuracy", "seconds", "images_per_second"] {
            assert!(record[key].as_f64().unwrap().is_finite(), "{key} in {record}");
        }
        // Validation counts every one of the 5,000 images.
        let n_correct = record["validation_n_correct"].as_u64().unwrap();
        assert_eq!(record["validation_accuracy"].as_f64().unwrap(), n_correct as f64 / 5000.0);
    }
    let validation: Vec<f64> = records[..2].iter().map(|r| r["validation_accuracy"].as_f64().unwrap()).collect();
    let best_epoch = if validation[1] > validation[0] { 1 } else { 0 };
    let test = &records[2]["test"];
    assert_eq!(test["best_epoch"], best_epoch);
    assert_eq!(test["n_images"], 10_000);
    // Measured 0.9354 for this setting (seed 0, 2 threads); an untrained
    // network scores about 0.1, and a broken loss, optimizer or augmentation
    // far below this bound. The margin allows other CPUs' kernels.
    let test_accuracy = test["accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.90, "test accuracy {test_accuracy} after 2 epochs on 3,000 images");
    assert!(records[1]["loss"].as_f64().unwrap() < records[0]["loss"].as_f64().unwrap());

    // The seed's report, uncoloured when not on a terminal.
    for line in ["Epoch: 001/002 cost: ", "Epoch: 002/002 cost: ", " TRAIN ACCURACY: ", " VALIDATION ACCURACY: "] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(stdout.contains(&format!(" BEST EPOCH UPDATED!! [{best_epoch}] ")), "{stdout}");
    assert!(!stdout.contains('\x1b'), "colour codes without a terminal:\n{stdout}");
    assert!(stdout.contains(&format!("LOADING [{}]", save_dir.join("best.safetensors").display())), "{stdout}");
    assert!(stdout.contains(&format!("TEST ACCURACY: {test_accuracy:.5}")), "{stdout}");

    // Checkpoints: net-0 pruned by --keep 1, net-1, best (of the best epoch) and last.
    assert!(!save_dir.join("net-0.safetensors").exists());
    let (_, last) = checkpoint::read_meta(&save_dir.join("net-1.safetensors")).unwrap();
    assert_eq!((last.epoch, last.step), (2, 120));
    let (_, best) = checkpoint::read_meta(&save_dir.join("best.safetensors")).unwrap();
    assert_eq!(best.epoch, best_epoch + 1);
    assert_eq!(best.best_validation_accuracy, Some((validation[best_epoch as usize], best_epoch)));
    assert!(save_dir.join("last.safetensors").exists());

    // config.json: every setting, the versions and the device.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(save_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["settings"]["batch_size"], 50);
    assert_eq!(config["settings"]["augment"], "seed");
    assert_eq!(config["recipe"]["seed"], 0);
    assert_eq!(config["tch"], "0.24.0");
    assert!(config["libtorch"].as_str().unwrap().starts_with("2.11.0"), "{config}");
    assert!(config["device"].as_str().unwrap().starts_with("cpu"), "{config}");
    assert_eq!(config["data"]["n_train"], 3000);

    // `evaluate` agrees with the run's own test result, on the split and on an IDX pair.
    let best_path = save_dir.join("best.safetensors").display().to_string();
    let output = run(&["evaluate", "--checkpoint", &best_path, "--device", "cpu", "--json"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["n_correct"], test["n_correct"], "{report}");
    let confusion = report["confusion_matrix"].as_array().unwrap();
    let diagonal: u64 = (0..10).map(|class| confusion[class][class].as_u64().unwrap()).sum();
    let total: u64 = confusion.iter().flat_map(|row| row.as_array().unwrap()).map(|n| n.as_u64().unwrap()).sum();
    assert_eq!((diagonal, total), (test["n_correct"].as_u64().unwrap(), 10_000));
    let mnist = data_dir().join("mnist");
    let (images, labels) = (mnist.join("t10k-images-idx3-ubyte.gz"), mnist.join("t10k-labels-idx1-ubyte.gz"));
    let (images, labels) = (images.display().to_string(), labels.display().to_string());
    let output = run(&["evaluate", "--checkpoint", &best_path, "--images", &images, "--labels", &labels]);
    assert_success(&output);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains(&format!("accuracy: {test_accuracy:.5} ({}/10000)", test["n_correct"])), "{report}");
    assert!(report.contains("confusion matrix"), "{report}");
    assert!(report.lines().filter(|line| line.starts_with("  ") && line.contains(": 0.")).count() >= 10, "{report}");

    // A second fresh run into the same directory would overwrite it: refused.
    let output = train(&save_dir, &["--epochs", "1"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("already holds a run"), "{}", text(&output));
}

#[test]
fn a_piped_log_is_plain_text_even_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let args = common::train_args(
        dir.path(),
        &["--epochs", "1", "--train-images", "100", "--validation-size", "100", "--train-accuracy-images", "50"],
    );
    let output = common::trainer().env_remove("NO_COLOR").args(args).output().unwrap();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INFO") && stderr.contains("epoch 1/1: cost"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "colour codes in a piped log:\n{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains('\x1b'), "colour codes in piped stdout");
}

#[test]
fn bf16_trains_where_the_cpu_computes_it_natively_and_is_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let save_dir = dir.path().join("run");
    let quick = ["--train-images", "3000", "--validation-size", "5000", "--epochs", "2", "--display-step", "1"];
    let output = train(&save_dir, &[&quick[..], &["--precision", "bf16"]].concat());
    if !model::network::cpu_has_native_bf16() {
        assert!(!output.status.success());
        let message = text(&output);
        assert!(message.contains("--precision: precision bf16: this CPU has no native bf16"), "{message}");
        assert!(!save_dir.join("last.safetensors").exists(), "refused before training");
        return;
    }
    assert_success(&output);
    let records = metrics(&save_dir);
    // The same bound as the fp32 run of the same setting (0.9354 measured there).
    let test_accuracy = records[2]["test"]["accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.90, "test accuracy {test_accuracy} after 2 bf16 epochs on 3,000 images");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(save_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["precision"], "bf16");
    // The checkpoints hold fp32 weights, which `evaluate` reads as any other.
    let best = save_dir.join("best.safetensors").display().to_string();
    let output = run(&["evaluate", "--checkpoint", &best, "--device", "cpu", "--json"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["n_correct"], records[2]["test"]["n_correct"]);
    // Precision is part of the recipe: a resumed run keeps it.
    let resume = ["--train-images", "3000", "--validation-size", "5000", "--epochs", "3", "--resume"];
    let output = train(&save_dir, &[&resume[..], &["--precision", "fp32"]].concat());
    assert!(!output.status.success());
    assert!(text(&output).contains("precision = \"bf16\", but this command gives \"fp32\""), "{}", text(&output));
}

#[test]
fn a_schedule_sets_each_steps_rate_and_patience_stops_a_run_that_stopped_improving() {
    let dir = tempfile::tempdir().unwrap();
    // After one epoch the rate drops a million-fold: the network (one class
    // for every image after 20 steps) stops changing, and so does its accuracy.
    let output = train(dir.path(), &["--epochs", "6", "--patience", "1", "--schedule", "step:1,0.000001"]);
    assert_success(&output);
    let log = text(&output);
    assert!(
        log.contains("stopping early after epoch 2: the validation accuracy has not improved since epoch 1"),
        "{log}"
    );
    let records = metrics(dir.path());
    let epochs: Vec<&serde_json::Value> = records.iter().filter(|record| record.get("epoch").is_some()).collect();
    assert_eq!(epochs.len(), 2, "{records:?}");
    assert_eq!((epochs[0]["learning_rate"].as_f64(), epochs[1]["learning_rate"].as_f64()), (Some(0.001), Some(1e-9)));
    assert_eq!(epochs[1]["validation_accuracy"], epochs[0]["validation_accuracy"]);
    let test = records.last().unwrap().get("test").expect("the best epoch is tested after an early stop");
    assert_eq!(test["best_epoch"], 0);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["recipe"]["schedule"].as_str(), config["recipe"]["patience"].as_u64()),
        (Some("step:1,0.000001"), Some(1))
    );

    // Bad values name the flag and what is wrong.
    for (flag, value, expected) in [
        ("--schedule", "cosine:0", "EPOCHS must be above 0"),
        ("--schedule", "exponential:1.5", "DECAY must be at most 1"),
        ("--patience", "0", "0 is not in 1.."),
    ] {
        let other = tempfile::tempdir().unwrap();
        let output = train(other.path(), &[flag, value]);
        assert!(!output.status.success());
        assert!(text(&output).contains(flag) && text(&output).contains(expected), "{flag} {value}: {}", text(&output));
    }
}

#[test]
fn lr_decay_is_recorded_as_its_exponential_schedule_and_resumes_as_either_flag() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), &["--epochs", "2", "--lr-decay", "0.5"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["schedule"], "exponential:0.5");
    assert_success(&train(dir.path(), &["--epochs", "3", "--schedule", "exponential:0.5", "--resume"]));
    let rates: Vec<Option<f64>> = metrics(dir.path())
        .iter()
        .filter(|record| record.get("epoch").is_some())
        .map(|record| record["learning_rate"].as_f64())
        .collect();
    assert_eq!(rates, [Some(0.001), Some(0.0005), Some(0.00025)]);
    let other = train(dir.path(), &["--epochs", "4", "--lr-decay", "0.9", "--resume"]);
    assert!(!other.status.success());
    assert!(text(&other).contains("exponential:0.5") && text(&other).contains("exponential:0.9"), "{}", text(&other));
}

#[test]
fn a_validation_fold_holds_out_other_images_is_recorded_and_must_match_on_resume() {
    let first = tempfile::tempdir().unwrap();
    assert_success(&train(first.path(), &["--epochs", "1"]));
    let fold = tempfile::tempdir().unwrap();
    assert_success(&train(fold.path(), &["--epochs", "1", "--validation-fold", "3"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fold.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["validation_fold"], 3, "{config}");
    let (fold_metrics, first_metrics) = (metrics(fold.path()), metrics(first.path()));
    assert_ne!(fold_metrics[0]["validation_loss"], first_metrics[0]["validation_loss"], "other validation images");
    assert_ne!(fold_metrics[0]["loss"], first_metrics[0]["loss"], "other training images");
    let without = train(fold.path(), &["--epochs", "2", "--resume"]);
    assert!(!without.status.success());
    assert!(text(&without).contains("validation_fold"), "{}", text(&without));
    // Evaluating on another fold's validation images would measure images the run trained on.
    let save_dir = fold.path().display().to_string();
    let evaluate =
        ["evaluate", "--save-dir", &save_dir, "--split", "validation", "--validation-size", "1000", "--json"];
    let refused = common::run(&evaluate);
    assert!(!refused.status.success());
    let expected = "held out validation fold 3 of 1000 images";
    assert!(text(&refused).contains(expected) && text(&refused).contains("--validation-fold 3"), "{}", text(&refused));
    let measured = common::run(&[&evaluate[..], &["--validation-fold", "3"]].concat());
    assert_success(&measured);
    let report: serde_json::Value = serde_json::from_slice(&measured.stdout).unwrap();
    let recorded = fold_metrics[0]["validation_accuracy"].as_f64().unwrap();
    assert!((report["accuracy"].as_f64().unwrap() - recorded).abs() < 1e-9, "{report} against {recorded}");
    // 60,000 training images in blocks of 1,000: folds 0 to 59.
    let beyond = train(tempfile::tempdir().unwrap().path(), &["--validation-fold", "60"]);
    assert!(!beyond.status.success());
    assert!(text(&beyond).contains("folds 0 to 59 exist"), "{}", text(&beyond));
}

#[test]
fn the_continuous_affine_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&train(dir.path(), &["--epochs", "1", "--augment", "affine:10,0.10,0.1"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["augment"], "affine:10,0.1,0.1", "recorded in its canonical form");
    let seed = tempfile::tempdir().unwrap();
    assert_success(&train(seed.path(), &["--epochs", "1"]));
    assert_ne!(metrics(dir.path())[0]["loss"], metrics(seed.path())[0]["loss"], "another augmentation, another run");
    let bad = train(tempfile::tempdir().unwrap().path(), &["--augment", "affine:10,1.5,0.1"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("ZOOM is a number from 0 to below 1"), "{}", text(&bad));
}

#[test]
fn an_elastic_distortion_after_the_seeds_affine_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let output = train(dir.path(), &["--epochs", "1", "--augment", "seed+elastic:34.0,4"]);
    assert_success(&output);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"]["augment"], "seed+elastic:34,4", "recorded in its canonical form");
    let plain = tempfile::tempdir().unwrap();
    assert_success(&train(plain.path(), &["--epochs", "1"]));
    assert_ne!(metrics(dir.path())[0]["loss"], metrics(plain.path())[0]["loss"], "the distortion changes the run");
    let bad = train(tempfile::tempdir().unwrap().path(), &["--augment", "seed+elastic:34,9"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("elastic sigma 9 reaches 36 pixels, more than the 28x28 image"), "{}", text(&bad));
}

#[test]
fn a_named_recipe_sets_its_flags_records_them_and_must_be_given_again_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    // The preset's 40 epochs are overridden to keep the test short; the rest are its own.
    assert_success(&train(dir.path(), &["--recipe", "strong", "--epochs", "1"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let recipe = &config["recipe"];
    assert_eq!(
        (&recipe["augment"], &recipe["schedule"], &recipe["ema"]),
        (&serde_json::json!("seed+elastic:34,4"), &serde_json::json!("cosine:40,0"), &serde_json::json!(0.999)),
        "{config}"
    );
    assert_eq!(config["settings"]["recipe"], "strong");
    let without = train(dir.path(), &["--epochs", "2", "--resume"]);
    assert!(!without.status.success());
    assert!(text(&without).contains("was started with augment = "), "{}", text(&without));
    assert_success(&train(dir.path(), &["--recipe", "strong", "--epochs", "2", "--resume"]));
    assert_eq!(metrics(dir.path()).iter().filter(|record| record.get("epoch").is_some()).count(), 2);
}

#[test]
fn the_other_networks_train_record_themselves_and_resume_only_as_themselves() {
    for (network, parameters) in [("vgg", 192_330), ("strided", 325_578)] {
        let dir = tempfile::tempdir().unwrap();
        let small = ["--epochs", "1", "--train-images", "500", "--augment", "none"];
        assert_success(&train(dir.path(), &[&["--network", network], &small[..]].concat()));
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(
            (&config["model"]["architecture"], &config["model"]["parameters"]),
            (&serde_json::json!(network), &serde_json::json!(parameters))
        );
        let other = train(dir.path(), &["--epochs", "2", "--train-images", "500", "--augment", "none", "--resume"]);
        assert!(!other.status.success());
        assert!(text(&other).contains(network), "{}", text(&other));
        let resumed = ["--network", network, "--epochs", "2", "--train-images", "500", "--augment", "none", "--resume"];
        assert_success(&train(dir.path(), &resumed));
        assert_eq!(metrics(dir.path()).iter().filter(|record| record.get("epoch").is_some()).count(), 2);
    }
}
