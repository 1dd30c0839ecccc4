//! Test-time views (`--tta`) in `evaluate`, `predict`, `report`, `export`
//! and `serve`: `none` changes nothing, `shift:1` answers with the mean of
//! the network's probabilities over the image and its four one-pixel moves
//! (checked against predictions on shifted IDX files made here with ndarray),
//! and specs that cannot be meant are refused naming the flag.

mod common;

use std::path::Path;

use common::{assert_success, run, text};
use ndarray::{Array3, Axis, s};
use serde_json::Value;

const N_IMAGES: usize = 40;

fn evaluate(extra: &[&str]) -> Value {
    let fixture = common::trained_checkpoint().display().to_string();
    let mut args = vec!["evaluate", "--json", "--device", "cpu", "--checkpoint", &fixture];
    args.extend(extra);
    let output = run(&args);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every class's probability for each image of an IDX file (`predict --top 10`).
fn predicted(images: &Path, extra: &[&str]) -> Vec<[f64; 10]> {
    let fixture = common::trained_checkpoint().display().to_string();
    let images = images.display().to_string();
    let mut args = vec!["predict", "--json", "--top", "10", "--device", "cpu", "--checkpoint", &fixture];
    args.extend(["--images", &images]);
    args.extend(extra);
    let output = run(&args);
    assert_success(&output);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            let mut row = [0.0; 10];
            for entry in line["top"].as_array().unwrap() {
                row[entry["class"].as_u64().unwrap() as usize] = entry["probability"].as_f64().unwrap();
            }
            row
        })
        .collect()
}

/// `images` moved `dx` pixels right and `dy` down, zeros coming in (plain ndarray).
fn shifted(images: &Array3<u8>, dx: isize, dy: isize) -> Array3<u8> {
    let mut out = Array3::zeros(images.dim());
    let side = images.dim().1 as isize;
    let (from_x, to_x) = (0.max(-dx), side.min(side - dx));
    let (from_y, to_y) = (0.max(-dy), side.min(side - dy));
    out.slice_mut(s![.., from_y + dy..to_y + dy, from_x + dx..to_x + dx]).assign(&images.slice(s![
        ..,
        from_y..to_y,
        from_x..to_x
    ]));
    out
}

fn write_images(path: &Path, images: &Array3<u8>) {
    let array =
        idx::IdxArray::new(images.shape().to_vec(), idx::IdxData::U8(images.iter().copied().collect())).unwrap();
    idx::write_idx(path, &array, idx::Compression::None).unwrap();
}

#[test]
fn evaluate_through_no_views_is_plain_evaluation_and_through_shifts_reports_them() {
    let plain = evaluate(&[]);
    let none = evaluate(&["--tta", "none"]);
    assert_eq!((&none["n_correct"], &none["confusion_matrix"]), (&plain["n_correct"], &plain["confusion_matrix"]));
    assert_eq!((&none["test_time_views"], &none["n_views"]), (&Value::from("none"), &Value::from(1)));
    let shifts = evaluate(&["--tta", "shift:1"]);
    assert_eq!((&shifts["test_time_views"], &shifts["n_views"]), (&Value::from("shift:1"), &Value::from(5)));
    assert_ne!(shifts["confusion_matrix"], plain["confusion_matrix"], "five views are another answer");
    // An ensemble of two copies through the views answers as one checkpoint
    // through them, and each member's accuracy is measured through them too.
    let fixture = common::trained_checkpoint().display().to_string();
    let twice = evaluate(&["--tta", "shift:1", "--checkpoint", &fixture]);
    assert_eq!(twice["n_correct"], shifts["n_correct"]);
    for member in twice["members"].as_array().unwrap() {
        assert_eq!(member["n_correct"], shifts["n_correct"], "{member}");
    }
}

#[test]
fn predict_through_shifts_is_the_mean_over_shifted_copies() {
    let dir = tempfile::tempdir().unwrap();
    let test_images = common::data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
    let array = idx::read_idx(&test_images).unwrap();
    let idx::IdxData::U8(bytes) = array.data() else { panic!("MNIST images are bytes") };
    let all = Array3::from_shape_vec((array.shape()[0], 28, 28), bytes.clone()).unwrap();
    let images = all.slice_axis(Axis(0), (0..N_IMAGES).into()).to_owned();
    let original = dir.path().join("original.idx");
    write_images(&original, &images);
    let mut expected = vec![[0.0; 10]; N_IMAGES];
    for (index, (dx, dy)) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)].into_iter().enumerate() {
        let path = dir.path().join(format!("view-{index}.idx"));
        write_images(&path, &shifted(&images, dx, dy));
        for (sum, row) in expected.iter_mut().zip(predicted(&path, &[])) {
            sum.iter_mut().zip(row).for_each(|(sum, value)| *sum += value / 5.0);
        }
    }
    let through_views = predicted(&original, &["--tta", "shift:1"]);
    let plain = predicted(&original, &[]);
    assert_eq!(through_views.len(), N_IMAGES);
    for (image, (ours, mean)) in through_views.iter().zip(&expected).enumerate() {
        for class in 0..10 {
            assert!((ours[class] - mean[class]).abs() < 1e-4, "image {image}, class {class}: {ours:?} vs {mean:?}");
        }
    }
    let moved = through_views.iter().zip(&plain).filter(|(ours, alone)| (ours[0] - alone[0]).abs() > 1e-4).count();
    assert!(moved > 0, "the views changed no probability");
}

#[test]
fn report_export_and_serve_take_the_views_and_bad_specs_are_refused() {
    let fixture = common::trained_checkpoint();
    let fixture_text = fixture.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let no_run = dir.path().join("no-run").display().to_string();
    let out_text = out.display().to_string();
    let args = ["report", "--checkpoint", &fixture_text, "--out", &out_text, "--save-dir", &no_run];
    let output = run(&[&args[..], &["--tta", "diagonal:1"]].concat());
    assert_success(&output);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("diagonal:1 (5 views of each image)"), "{page}");
    assert!(page.contains("Confusion matrix (rows: true class), through test-time views diagonal:1"), "{page}");

    // The views become part of the traced graph.
    let module_path = dir.path().join("views.pt");
    let module_text = module_path.display().to_string();
    let export = ["export", "--checkpoint", &fixture_text, "--format", "torchscript", "--out", &module_text];
    assert_success(&run(&[&export[..], &["--tta", "shift:1,rotate:10"]].concat()));
    let module = tch::CModule::load(&module_path).unwrap();
    let network = model::load_for_inference(&fixture, tch::Device::Cpu).unwrap().checkpoint.network;
    let batch = tch::Tensor::rand([3, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
    let traced = tch::no_grad(|| module.forward_ts(&[&batch])).unwrap();
    let alone = tch::no_grad(|| model::Classifier::logits(&network, &batch)).unwrap();
    let views = model::TestTimeAugmented::new(network, "shift:1,rotate:10".parse().unwrap());
    let ours = tch::no_grad(|| model::Classifier::logits(&views, &batch)).unwrap();
    let gap = (&traced - &ours).abs().max().double_value(&[]);
    assert!(gap < 1e-5, "traced vs in-process: {gap}");
    assert!((traced - alone).abs().max().double_value(&[]) > 1e-4, "the graph is not the network alone");
    let onnx = ["export", "--checkpoint", &fixture_text, "--format", "onnx", "--out", "x.onnx", "--tta", "shift:1"];
    let refused = run(&onnx);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--tta shift:1 asks for test-time views: export them with --format torchscript"));

    let runs = dir.path().join("no-runs");
    std::fs::create_dir(&runs).unwrap();
    let (_server, line) = common::start_serve_with(&runs, &["--checkpoint", &fixture_text, "--tta", "shift:2"]);
    let model = common::get_json(&common::served_address(&line), "/api/model");
    assert!(model["name"].as_str().unwrap().contains("5 test-time views (shift:2)"), "{model}");

    for (spec, expected) in [("shift:9", "from 1 to 4, found `9`"), ("flip:1", "unknown view `flip`")] {
        let output = run(&["evaluate", "--checkpoint", &fixture_text, "--tta", spec]);
        assert!(!output.status.success(), "--tta {spec} was accepted");
        let message = text(&output);
        assert!(message.contains("--tta") && message.contains(expected), "--tta {spec}: {message}");
    }
}
