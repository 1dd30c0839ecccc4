//! Every way a run can be impossible gets a clear error, before any work
//! (nothing is written), and a diverging run stops with its epoch and step.

mod common;

use common::{text, train};

/// Runs with `extra` settings into a save directory that must stay unwritten;
/// returns the error output.
fn refused(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let save_dir = dir.path().join("run");
    let output = train(&save_dir, extra);
    assert!(!output.status.success(), "{extra:?} was accepted:\n{}", text(&output));
    assert_eq!(output.status.code(), Some(1));
    assert!(!save_dir.exists(), "{extra:?}: the run directory was created before the error");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn impossible_settings_are_rejected_before_any_work() {
    let cases: &[(&[&str], &str)] = &[
        (&["--batch-size", "0"], "--batch-size must be between 1 and 65536, found 0"),
        (&["--eval-batch-size", "0"], "--eval-batch-size must be between 1 and 65536, found 0"),
        (&["--threads", "3000000000"], "--threads must be between 1 and 1024, found 3000000000"),
        (&["--prefetch", "1000000000"], "--prefetch must be between 1 and 65536, found 1000000000"),
        (&["--display-step", "0"], "--display-step must be at least 1"),
        (&["--batch-size", "1001"], "--batch-size 1001 is larger than the 1000 training images"),
        (&["--train-images", "60000"], "--train-images 60000 is more than the 59000 training images"),
        (&["--validation-size", "60000"], "validation size 60000 leaves no training images"),
        (&["--validation-size", "70000"], "validation size 70000 leaves no training images"),
        (&["--learning-rate=-1"], "--learning-rate must be a positive number"),
        (&["--max-pixels", "1000"], "holds 47040000 pixels, more than the 1000 one load may turn into floats"),
    ];
    for (extra, expected) in cases {
        let stderr = refused(extra);
        assert!(stderr.contains(expected), "{extra:?}: expected {expected:?} in\n{stderr}");
    }
}

#[test]
fn a_save_dir_that_is_a_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"precious").unwrap();
    let output = train(&file, &[]);
    assert!(!output.status.success());
    assert!(text(&output).contains("is a file, not a directory"), "{}", text(&output));
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

#[test]
fn missing_data_points_to_fetch_data() {
    let empty = tempfile::tempdir().unwrap();
    let data_dir = empty.path().display().to_string();
    let stderr = refused(&["--data-dir", &data_dir]);
    assert!(stderr.contains("cargo xtask fetch-data --dataset mnist"), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte"), "the missing file is named: {stderr}");
    let stderr = refused(&["--data-dir", &data_dir, "--dataset", "fashion-mnist"]);
    assert!(stderr.contains("cargo xtask fetch-data --dataset fashion-mnist"), "{stderr}");
}

#[test]
fn unavailable_cuda_is_an_error_with_its_reason_not_a_cpu_run() {
    let stderr = refused(&["--device", "cuda:99"]);
    assert!(stderr.contains("cuda:99 requested, but CUDA is unavailable: "), "{stderr}");
    // The trainer links libtorch as this test does, so they see the same facts.
    let facts = model::device::CudaInfo::probe();
    if facts.n_devices == 0 {
        let stderr = refused(&["--device", "cuda"]);
        assert!(stderr.contains("cuda:0 requested, but CUDA is unavailable: "), "{stderr}");
        let cause = match (facts.has_cuda_support, facts.driver_loaded) {
            (false, _) => "libtorch has no CUDA support",
            (true, false) => "libtorch has CUDA, but this machine has no NVIDIA driver loaded",
            (true, true) => "the NVIDIA driver is loaded but libtorch sees no CUDA device",
        };
        assert!(stderr.contains(cause), "expected {cause:?} ({facts:?}): {stderr}");
    }
}

#[test]
fn a_diverging_loss_stops_the_run_naming_epoch_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let output = train(dir.path(), &["--learning-rate", "1e30"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the loss became NaN at epoch 0, step "), "{stderr}");
    assert!(stderr.contains("--resume --override-learning-rate R"), "{stderr}");
}

#[test]
fn training_refuses_images_that_are_not_28x28_as_evaluate_does() {
    use idx::mnist::FILE_NAMES;
    use idx::{Compression, IdxArray, write_idx};
    // 14x56 has 784 pixels, as 28x28 does: it once trained silently, scrambled.
    let data = tempfile::tempdir().unwrap();
    let mnist = data.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let images = |n: usize| IdxArray::from_array(ndarray::Array3::<u8>::from_elem((n, 14, 56), 200));
    let labels = |n: usize| IdxArray::from_array(ndarray::Array1::from_shape_fn(n, |i| (i % 10) as u8));
    write_idx(mnist.join(FILE_NAMES[0]), &images(120), Compression::Gzip).unwrap();
    write_idx(mnist.join(FILE_NAMES[1]), &labels(120), Compression::Gzip).unwrap();
    write_idx(mnist.join(FILE_NAMES[2]), &images(20), Compression::Gzip).unwrap();
    write_idx(mnist.join(FILE_NAMES[3]), &labels(20), Compression::Gzip).unwrap();
    let data_dir = data.path().display().to_string();
    let stderr = refused(&["--data-dir", &data_dir, "--validation-size", "20"]);
    assert!(stderr.contains("mnist train: images are 14x56, the network takes 28x28"), "{stderr}");
}

/// A copy of `source` with one value of `tensor` set to NaN, written byte by
/// byte (the program itself never saves such a state).
fn poisoned_copy(source: &std::path::Path, tensor: &str, out: &std::path::Path) {
    let mut bytes = std::fs::read(source).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header[tensor]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header_len;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn checkpoints_whose_weights_are_not_finite_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = dir.path().join("poisoned.safetensors");
    poisoned_copy(&common::trained_checkpoint(), "fc4.weight", &poisoned);
    let checkpoint = poisoned.display().to_string();
    let evaluate = ["evaluate", "--checkpoint", &checkpoint, "--split", "validation", "--validation-size", "500"];
    let output = common::run(&evaluate);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let expected = "poisoned.safetensors: tensor `fc4.weight` holds NaN or infinite values: not using it \
                    (pass --allow-nonfinite to use it anyway)";
    assert!(text(&output).contains(expected), "{}", text(&output));
    let output = common::run(&[&evaluate[..], &["--allow-nonfinite"]].concat());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("using it anyway (--allow-nonfinite)"), "{}", text(&output));

    let images = common::data_dir().join("mnist/t10k-images-idx3-ubyte.gz").display().to_string();
    let output = common::run(&["predict", "--checkpoint", &checkpoint, "--images", &images]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("not using it (pass --allow-nonfinite"), "{}", text(&output));
}
