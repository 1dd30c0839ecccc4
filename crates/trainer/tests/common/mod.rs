//! Helpers shared by the trainer's integration tests: running the binary on
//! small slices of the embedded MNIST, and reading what a run wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use model::checkpoint;
use tch::Device;

/// Settings that make a run take seconds: 1,000 training images, 1,000
/// validation images, CPU, two libtorch threads (reproducibility needs a fixed count).
pub const QUICK: &[&str] = &[
    "--train-images",
    "1000",
    "--validation-size",
    "1000",
    "--train-accuracy-images",
    "200",
    "--eval-batch-size",
    "500",
    "--device",
    "cpu",
    "--threads",
    "2",
];

/// The trainer binary with a clean environment for its library path.
pub fn trainer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.env_remove("LD_LIBRARY_PATH").env("NO_COLOR", "1").env("RUST_LOG", "info");
    command
}

/// Runs the trainer with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    trainer().args(args).output().unwrap()
}

/// The arguments of a run in `save_dir` with [`QUICK`] settings, which flags in `extra` override.
pub fn train_args(save_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--save-dir".to_owned(), save_dir.display().to_string()];
    for pair in QUICK.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend(pair.iter().map(|word| word.to_string()));
        }
    }
    args.extend(extra.iter().map(|word| word.to_string()));
    args
}

/// Runs the trainer in `save_dir` with [`QUICK`] settings, which flags in `extra` override.
pub fn train(save_dir: &Path, extra: &[&str]) -> Output {
    trainer().args(train_args(save_dir, extra)).output().unwrap()
}

/// stdout and stderr together, for assertion messages.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Asserts the run succeeded, showing its output if not.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "exit {:?}:\n{}", output.status, text(output));
}

/// The records of `metrics.jsonl`.
pub fn metrics(save_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(save_dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The records without their timing fields, which no two runs share.
pub fn metrics_without_timings(save_dir: &Path) -> Vec<serde_json::Value> {
    let mut records = metrics(save_dir);
    for record in &mut records {
        if let Some(object) = record.as_object_mut() {
            for key in ["seconds", "train_seconds", "images_per_second"] {
                object.remove(key);
            }
        }
    }
    records
}

/// Asserts two checkpoints hold identical tensors, optimizer state and metadata.
pub fn assert_same_checkpoint(left: &Path, right: &Path) {
    let (left_checkpoint, right_checkpoint) =
        (checkpoint::load(left, Device::Cpu).unwrap(), checkpoint::load(right, Device::Cpu).unwrap());
    assert_eq!(left_checkpoint.meta, right_checkpoint.meta);
    for ((spec, a), (_, b)) in
        left_checkpoint.network.named_tensors().into_iter().zip(right_checkpoint.network.named_tensors())
    {
        assert!(a.equal(b), "{} differs between {} and {}", spec.name, left.display(), right.display());
    }
    assert_eq!(left_checkpoint.optimizer.step_count(), right_checkpoint.optimizer.step_count());
    for (a, b) in left_checkpoint.optimizer.exp_avg().iter().zip(right_checkpoint.optimizer.exp_avg()) {
        assert!(a.equal(b), "Adam's first moments differ");
    }
    for (a, b) in left_checkpoint.optimizer.exp_avg_sq().iter().zip(right_checkpoint.optimizer.exp_avg_sq()) {
        assert!(a.equal(b), "Adam's second moments differ");
    }
}

/// Asserts every checkpoint file in `dir` (not a temporary one) loads.
pub fn assert_every_checkpoint_loads(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.extension().is_some_and(|extension| extension == "safetensors") {
            checkpoint::load(&path, Device::Cpu)
                .unwrap_or_else(|error| panic!("{} does not load: {error}", path.display()));
        }
    }
}

/// The temporary files in `dir`: atomic-write-file's are `.NAME.XXXXXX`.
pub fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

/// The repository's root folder (for its `scripts/`).
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's `data/` folder.
pub fn data_dir() -> PathBuf {
    repository().join("data")
}

/// A checkpoint of a network trained for the tests that need one that
/// works: 3 epochs on 5,000 images with the seed's augmentation (about 97%
/// test accuracy). Trained once per build of the trainer and shared by every
/// test and test binary: cached under the target folder, keyed by a hash of
/// the trainer executable (so any change to the code trains a new one),
/// behind a file lock (test binaries run in parallel). Never committed.
pub fn trained_checkpoint() -> PathBuf {
    static FIXTURE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(train_fixture).clone()
}

fn train_fixture() -> PathBuf {
    use std::hash::Hasher;
    let executable = std::fs::read(env!("CARGO_BIN_EXE_trainer")).unwrap();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(&executable);
    let key = format!("trained-{:016x}", hasher.finish());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join("trained.lock")).unwrap();
    lock.lock().unwrap();
    let best = root.join(&key).join("best.safetensors");
    if best.exists() {
        return best;
    }
    // Fixtures of older builds are of no further use.
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("trained-") {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    let staging = root.join(format!("{key}.part"));
    // The QUICK settings, on 5,000 training images for 3 epochs.
    let output = train(&staging, &["--epochs", "3", "--train-images", "5000"]);
    assert_success(&output);
    std::fs::rename(&staging, root.join(&key)).unwrap();
    best
}

/// A child process, killed and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `trainer serve` over `runs` on a free loopback port (CPU, two threads,
/// the repository's data), and the line it prints first: `serving on http://ADDRESS/ (...)`.
pub fn start_serve(runs: &Path) -> (KillOnDrop, String) {
    start_serve_with(runs, &[])
}

/// [`start_serve`] with more flags.
pub fn start_serve_with(runs: &Path, extra: &[&str]) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut child = trainer()
        .args(["serve", "--runs", &runs.display().to_string(), "--addr", "127.0.0.1:0"])
        .args(extra)
        .args(["--device", "cpu", "--threads", "2", "--data-dir", &data_dir().display().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (KillOnDrop(child), line)
}

/// The address in `trainer serve`'s first line (`serving on http://ADDRESS/ (...)`).
pub fn served_address(line: &str) -> String {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned()
}

/// A plain HTTP/1.1 exchange; returns the status line and the body.
pub fn request(address: &str, head: &str, body: &[u8]) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// A GET of `path` answered with JSON, parsed (the status line must say 200).
pub fn get_json(address: &str, path: &str) -> serde_json::Value {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let (status, body) = request(address, &head, b"");
    assert!(status.contains(" 200 "), "GET {path}: {status}\n{body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: not JSON ({error}): {body}"))
}
