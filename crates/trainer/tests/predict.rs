//! `trainer predict` end to end: photos of digits against the same digits
//! raw, bad inputs, JSON, standard input, `--show-input`, IDX input, and the
//! class names and layout of a Fashion-MNIST checkpoint.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_success, data_dir, run, text, trained_checkpoint, trainer};
use idx::{Compression, IdxArray, write_idx};
use ndarray::{Array2, Array3, Axis, s};
use preprocess::render::{PhotoStyle, encode_jpeg, render_photo};

fn test_split(n: usize) -> (Array3<f32>, Vec<u8>) {
    let mnist = idx::mnist::Mnist::load(data_dir().join("mnist"), 5000).unwrap();
    (mnist.test.images.slice(s![..n, .., ..]).to_owned(), mnist.test.labels.iter().take(n).copied().collect())
}

/// Writes `images` (and `labels`) as MNIST-format IDX files in `dir`.
fn write_idx_pair(dir: &Path, images: &Array3<f32>, labels: &[u8]) -> (PathBuf, PathBuf) {
    let bytes = images.mapv(|value| (value * 255.0).round() as u8);
    let (images_path, labels_path) = (dir.join("images.idx"), dir.join("labels.idx"));
    write_idx(&images_path, &IdxArray::from_array(bytes), Compression::None).unwrap();
    write_idx(&labels_path, &IdxArray::from_array(ndarray::Array1::from(labels.to_vec())), Compression::None).unwrap();
    (images_path, labels_path)
}

/// The JSON lines of a `predict --json` run.
fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn accuracy(lines: &[serde_json::Value], labels: &[u8]) -> f64 {
    assert_eq!(lines.len(), labels.len());
    let correct = lines.iter().zip(labels).filter(|(line, label)| line["class"] == u64::from(**label)).count();
    correct as f64 / labels.len() as f64
}

/// Raw accuracy (IDX, no preprocessing) and photo accuracy (each digit
/// rendered as a colour JPEG photo, through the whole preprocessing) of
/// `checkpoint` on the first `n` test digits.
fn raw_and_photo_accuracy(checkpoint: &Path, n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = test_split(n);
    let (images_path, _) = write_idx_pair(dir.path(), &images, &labels);
    let checkpoint = checkpoint.display().to_string();
    let output =
        run(&["predict", "--checkpoint", &checkpoint, "--json", "--images", &images_path.display().to_string()]);
    assert_success(&output);
    let raw = accuracy(&json_lines(&output), &labels);

    let style = PhotoStyle::default();
    let mut files = Vec::new();
    for (index, digit) in images.outer_iter().enumerate() {
        let path = dir.path().join(format!("{index:05}.jpg"));
        std::fs::write(&path, encode_jpeg(&render_photo(digit, &style, index as u64), style.jpeg_quality)).unwrap();
        files.push(path.display().to_string());
    }
    let mut args = vec!["predict", "--checkpoint", &checkpoint, "--json"];
    args.extend(files.iter().map(String::as_str));
    let output = run(&args);
    assert_success(&output);
    let lines = json_lines(&output);
    assert!(lines.iter().all(|line| line["inverted"] == true), "every photo is dark ink on paper");
    (raw, accuracy(&lines, &labels))
}

#[test]
fn photos_of_digits_are_read_within_two_points_of_the_raw_digits() {
    let (raw, photo) = raw_and_photo_accuracy(&trained_checkpoint(), 1000);
    assert!(raw > 0.9, "the fixture network reads only {raw} of the raw digits");
    assert!(photo >= raw - 0.02, "photos: {photo}, raw digits: {raw}");
}

/// The figure of the docs (`docs/PREDICT.md`): a fully trained network on
/// 2,000 digits. Run it with the checkpoint in `PHOTO_CHECKPOINT`:
///
///     PHOTO_CHECKPOINT=nets/cnn_mnist_modern/best.safetensors \
///         cargo test --release -p trainer --test predict -- --ignored --nocapture
#[test]
#[ignore = "needs a fully trained network in PHOTO_CHECKPOINT"]
fn measure_photo_accuracy_of_a_fully_trained_network() {
    let checkpoint = std::env::var_os("PHOTO_CHECKPOINT").expect("set PHOTO_CHECKPOINT to a trained checkpoint");
    let n = std::env::var("PHOTO_DIGITS").map_or(2000, |n| n.parse().unwrap());
    let (raw, photo) = raw_and_photo_accuracy(Path::new(&checkpoint), n);
    println!("{n} test digits: raw {raw:.4}, photos {photo:.4}, difference {:.2} points", (raw - photo) * 100.0);
    assert!(photo >= raw - 0.01, "photos: {photo}, raw digits: {raw}");
}

/// A PNG of `image` (grey, `[0, 1]`).
fn png(image: &Array2<f32>) -> Vec<u8> {
    preprocess::encode_png(image.view())
}

#[test]
fn bad_inputs_are_named_and_the_others_still_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = test_split(1);
    let digit = images.index_axis(Axis(0), 0).to_owned();
    let good = png(&digit);
    let mut huge = b"P5 100000 100000 255\n".to_vec();
    huge.extend([0u8; 64]);
    // Under the pixel limit, over the memory one: 62 megapixels would take 1.06 GB to decode and prepare.
    let mut bomb = b"P5 7900 7900 255\n".to_vec();
    bomb.extend([0u8; 64]);
    let files: [(&str, Vec<u8>); 7] = [
        ("good.png", good.clone()),
        ("notes.png", b"shopping list: eggs".to_vec()),
        ("truncated.png", good[..good.len() / 2].to_vec()),
        ("empty.png", Vec::new()),
        ("huge.pgm", huge),
        ("bomb.pgm", bomb),
        ("blank.png", png(&Array2::from_elem((50, 50), 1.0))),
    ];
    let mut args = vec!["predict".to_owned(), "--checkpoint".to_owned(), trained_checkpoint().display().to_string()];
    for (name, bytes) in &files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        args.push(path.display().to_string());
    }
    let output = trainer().args(&args).output().unwrap();
    assert!(!output.status.success(), "bad inputs must fail the command:\n{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.lines().any(|line| line.contains("good.png") && line.contains(" 7 ")), "{stdout}");
    for (name, reason) in [
        ("notes.png", "not an image"),
        ("truncated.png", "cannot decode the PNG image"),
        ("empty.png", "empty file"),
        ("huge.pgm", "refused before decoding"),
        ("bomb.pgm", "more than the limit of 536870912 bytes; refused before decoding"),
        ("blank.png", "no ink found"),
    ] {
        assert!(stderr.lines().any(|line| line.contains(name) && line.contains(reason)), "{name}: {stderr}");
        assert!(!stdout.contains(name), "{name} has a prediction: {stdout}");
    }
    assert!(stderr.contains("6 of 7 inputs could not be predicted"), "{stderr}");

    // A checkpoint that is not one stops everything, naming it.
    let not_checkpoint = dir.path().join("good.png").display().to_string();
    let output = run(&["predict", "--checkpoint", &not_checkpoint, &not_checkpoint]);
    assert!(!output.status.success());
    assert!(text(&output).contains(&format!("{not_checkpoint}: not a safetensors file")), "{}", text(&output));
}

#[test]
fn json_standard_input_and_the_images_the_network_saw() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = test_split(3);
    let mut paths = Vec::new();
    for (index, digit) in images.outer_iter().enumerate() {
        let photo = render_photo(digit, &PhotoStyle::default(), index as u64);
        let path = dir.path().join(format!("digit{index}.jpg"));
        std::fs::write(&path, encode_jpeg(&photo, 90)).unwrap();
        paths.push(path.display().to_string());
    }
    let show = dir.path().join("seen");
    let checkpoint = trained_checkpoint().display().to_string();
    let mut command = trainer();
    command.args(["predict", "--checkpoint", &checkpoint, "--json", "--show-input", &show.display().to_string()]);
    command.args(&paths[..2]).arg("-").stdin(std::fs::File::open(&paths[2]).unwrap());
    let output = command.output().unwrap();
    assert_success(&output);
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["file"], "-");
    for (line, label) in lines.iter().zip(&labels) {
        assert_eq!(line["class"], u64::from(*label), "{line}");
        let top = line["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let probabilities: Vec<f64> = top.iter().map(|entry| entry["probability"].as_f64().unwrap()).collect();
        assert!(probabilities.windows(2).all(|pair| pair[0] >= pair[1]), "{line}");
        assert_eq!(top[0]["class"], line["class"]);
    }
    for name in ["digit0.png", "digit1.png", "stdin.png"] {
        let seen = image::open(show.join(name)).unwrap_or_else(|error| panic!("{name}: {error}")).to_luma8();
        assert_eq!(seen.dimensions(), (28, 28));
        // White ink on black, like MNIST: the corners are black, some pixels are white.
        assert_eq!(seen.get_pixel(0, 0)[0], 0);
        assert!(seen.pixels().any(|pixel| pixel[0] == 255), "{name} has no full-strength ink");
    }
}

#[test]
fn idx_input_agrees_with_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = test_split(500);
    let (images_path, labels_path) = write_idx_pair(dir.path(), &images, &labels);
    let checkpoint = trained_checkpoint().display().to_string();
    let (images_arg, labels_arg) = (images_path.display().to_string(), labels_path.display().to_string());
    let output = run(&["predict", "--checkpoint", &checkpoint, "--json", "--images", &images_arg]);
    assert_success(&output);
    let lines = json_lines(&output);
    assert_eq!(lines[499]["index"], 499);
    assert_eq!(lines[0]["file"], images_arg.as_str());
    let output =
        run(&["evaluate", "--checkpoint", &checkpoint, "--images", &images_arg, "--labels", &labels_arg, "--json"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(accuracy(&lines, &labels), report["accuracy"].as_f64().unwrap());
}

#[test]
fn a_fashion_checkpoint_names_its_classes_and_lays_items_out_its_way() {
    let dir = tempfile::tempdir().unwrap();
    let network = model::Network::new(model::Architecture::Intended, tch::Device::Cpu).unwrap();
    let adam = model::Adam::new(&network.trainable(), model::AdamConfig::default()).unwrap();
    let names =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
    let meta = model::CheckpointMeta {
        dataset: model::DatasetMeta { name: "fashion-mnist".into(), class_names: names.map(String::from).to_vec() },
        ..model::CheckpointMeta::default()
    };
    let checkpoint = dir.path().join("fashion.safetensors");
    model::checkpoint::save(&checkpoint, &network, &adam, None, &meta).unwrap();
    // A tall dark item on white: Fashion-MNIST scales its longer side to all 28 rows.
    let mut photo = Array2::from_elem((200, 120), 1.0f32);
    photo.slice_mut(s![20..180, 40..80]).fill(0.2);
    let path = dir.path().join("item.png");
    std::fs::write(&path, png(&photo)).unwrap();
    let show = dir.path().join("seen");
    let output = run(&[
        "predict",
        "--checkpoint",
        &checkpoint.display().to_string(),
        "--show-input",
        &show.display().to_string(),
        &path.display().to_string(),
    ]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let row = stdout.lines().nth(1).unwrap();
    assert!(names.iter().filter(|name| row.contains(*name)).count() >= 3, "{stdout}");
    let seen = image::open(show.join("item.png")).unwrap().to_luma8();
    let rows_with_ink = (0..28).filter(|&y| (0..28).any(|x| seen.get_pixel(x, y)[0] > 127)).count();
    assert!(rows_with_ink >= 26, "the item fills {rows_with_ink} rows, Fashion-MNIST's layout fills 28");
}

#[test]
fn a_checkpoint_of_a_data_set_this_build_does_not_know_is_an_error_never_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let network = model::Network::new(model::Architecture::Intended, tch::Device::Cpu).unwrap();
    let adam = model::Adam::new(&network.trainable(), model::AdamConfig::default()).unwrap();
    let meta = model::CheckpointMeta {
        dataset: model::DatasetMeta {
            name: "klingon-digits".into(),
            class_names: (0..10).map(|class| format!("glyph {class}")).collect(),
        },
        ..model::CheckpointMeta::default()
    };
    let checkpoint = dir.path().join("klingon.safetensors");
    model::checkpoint::save(&checkpoint, &network, &adam, None, &meta).unwrap();
    let mut photo = Array2::from_elem((100, 100), 1.0f32);
    photo.slice_mut(s![20..80, 45..55]).fill(0.0);
    let path = dir.path().join("glyph.png");
    std::fs::write(&path, png(&photo)).unwrap();
    let output = run(&["predict", "--checkpoint", &checkpoint.display().to_string(), &path.display().to_string()]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("the data set \"klingon-digits\" is unknown to this build"), "{}", text(&output));
}
