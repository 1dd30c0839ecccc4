//! The run directory: its file names (written here once), checkpoint
//! listing and pruning, and the one way this program writes files.
//!
//! Whole files (`config.json`, checkpoints, figures) are replaced atomically
//! and durably by `atomic-write-file`: a temporary file created exclusively
//! in the same folder, synced, renamed over the old one, and the folder
//! synced. `metrics.jsonl` is the exception: it grows by appending, one
//! `write_all` per record followed by a sync, so a kill leaves at most one
//! torn last line, which every reader skips.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use atomic_write_file::AtomicWriteFile;
use model::{Adam, CheckpointMeta, Ema, Network};
use runfiles::Record;

use crate::fault;

/// The default `--save-dir`.
pub const DEFAULT_SAVE_DIR: &str = "nets/cnn_mnist_modern";
/// Extension of checkpoint files.
pub const CHECKPOINT_EXTENSION: &str = "safetensors";
/// The best epoch's checkpoint.
pub const BEST_FILE: &str = "best.safetensors";
/// The newest state's checkpoint.
pub const LAST_FILE: &str = "last.safetensors";
/// The run's settings.
pub const CONFIG_FILE: &str = "config.json";
/// The run's records, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// How the last attempt ended (`runfiles::Status`).
pub const STATUS_FILE: &str = "status.json";
/// The writer's lock: held by the one `trainer train` writing the run, it
/// records that process's id.
pub const LOCK_FILE: &str = "train.lock";
/// The prefix of the numbered checkpoints `net-{epoch}`.
const EPOCH_PREFIX: &str = "net-";

/// The run directory's layout, for the web app (which reads run directories).
pub const LAYOUT: serve::RunLayout =
    serve::RunLayout { best_checkpoint: BEST_FILE, metrics: METRICS_FILE, config: CONFIG_FILE, status: STATUS_FILE };

/// One of a run's checkpoint files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFile {
    /// `net-{epoch}`: the state after 0-based epoch `epoch`, kept for the record.
    Epoch(u64),
    /// `best`: the epoch with the best validation accuracy so far.
    Best,
    /// `last`: the newest state, at an epoch's end or an interruption.
    Last,
}

/// The writer lock of a run directory, held while this value lives.
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The run directory at `dir` (not created yet).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Checks that the directory can hold a run, before any work is done: it
    /// must not be a file, and a new run must not overwrite the checkpoints
    /// of an existing one. (Records without any checkpoint, left by a run
    /// stopped in its first epoch, are replaced; a resumed run without any
    /// checkpoint starts from the beginning.)
    pub fn check(&self, resume: bool) -> Result<()> {
        if self.dir.exists() && !self.dir.is_dir() {
            bail!("--save-dir {} is a file, not a directory", self.dir.display());
        }
        if !resume && !self.checkpoints()?.is_empty() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --save-dir",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Takes the run's writer lock (an advisory `flock` on `train.lock`, which
    /// then records this process's id), or says which process holds it. The
    /// kernel releases the lock when its holder dies, however it dies, so a
    /// killed run's lock is simply taken over. Readers take no lock.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.dir.join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the run's lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                bail!(
                    "{} is in use by pid {}: another `trainer train` is writing this run; wait for it to end \
                     or choose another --save-dir",
                    self.dir.display(),
                    if holder.is_empty() { "unknown" } else { holder }
                );
            }
            Err(fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RunLock { _file: file })
    }

    /// Creates the directory.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| format!("cannot create --save-dir {}", self.dir.display()))
    }

    /// The path of a checkpoint file: `net-{epoch}.safetensors` (0-based
    /// epoch, like the seed's `net-3.ckpt`), `best.safetensors` or `last.safetensors`.
    pub fn checkpoint(&self, file: CheckpointFile) -> PathBuf {
        match file {
            CheckpointFile::Epoch(epoch) => self.dir.join(format!("{EPOCH_PREFIX}{epoch}.{CHECKPOINT_EXTENSION}")),
            CheckpointFile::Best => self.dir.join(BEST_FILE),
            CheckpointFile::Last => self.dir.join(LAST_FILE),
        }
    }

    /// `best.safetensors`.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoint(CheckpointFile::Best)
    }

    /// `last.safetensors`.
    pub fn last_checkpoint(&self) -> PathBuf {
        self.checkpoint(CheckpointFile::Last)
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join(METRICS_FILE)
    }

    /// `status.json`.
    pub fn status_path(&self) -> PathBuf {
        self.dir.join(STATUS_FILE)
    }

    /// Every checkpoint file in the directory (not temporary files).
    pub fn checkpoints(&self) -> Result<Vec<PathBuf>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == CHECKPOINT_EXTENSION))
            .filter(|path| !is_hidden(path))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The `net-{epoch}` checkpoints, oldest epoch first.
    pub fn epoch_checkpoints(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut numbered: Vec<(u64, PathBuf)> = self
            .checkpoints()?
            .into_iter()
            .filter_map(|path| {
                let stem = path.file_stem()?.to_str()?;
                let epoch = stem.strip_prefix(EPOCH_PREFIX)?.parse().ok()?;
                Some((epoch, path))
            })
            .collect();
        numbered.sort();
        Ok(numbered)
    }

    /// Deletes the oldest `net-{epoch}` checkpoints beyond the newest `keep`.
    pub fn prune(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let numbered = self.epoch_checkpoints()?;
        let n_extra = numbered.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for (_, path) in numbered.into_iter().take(n_extra) {
            fs::remove_file(&path).with_context(|| format!("cannot remove old checkpoint {}", path.display()))?;
            removed.push(path);
        }
        Ok(removed)
    }

    /// Removes the temporary files a killed run of this program left behind,
    /// and nothing else: `atomic-write-file`'s `.NAME.XXXXXX` for one of this
    /// directory's own file names (and older versions' `NAME.PID.part`).
    pub fn remove_temporaries(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_own_temporary(&name) {
                fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove the stale temporary file {}", entry.path().display()))?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

/// Whether `name` is the name of one of this program's own files in a run directory.
fn is_own_file(name: &str) -> bool {
    if [BEST_FILE, LAST_FILE, CONFIG_FILE, METRICS_FILE].contains(&name) {
        return true;
    }
    let epoch = name.strip_prefix(EPOCH_PREFIX).and_then(|rest| rest.strip_suffix(CHECKPOINT_EXTENSION));
    epoch.and_then(|epoch| epoch.strip_suffix('.')).is_some_and(|epoch| epoch.parse::<u64>().is_ok())
}

/// Whether `name` is a temporary file this program writes through.
fn is_own_temporary(name: &str) -> bool {
    // atomic-write-file: `.` + the final name + `.` + six letters or digits.
    let atomic = name.strip_prefix('.').and_then(|rest| {
        let (file, suffix) = rest.rsplit_once('.')?;
        (suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) && is_own_file(file)).then_some(())
    });
    // Versions before it: the final name + `.` + a process id + `.part`.
    let legacy = name.strip_suffix(".part").and_then(|rest| {
        let (file, pid) = rest.rsplit_once('.')?;
        (pid.parse::<u32>().is_ok() && is_own_file(file)).then_some(())
    });
    atomic.is_some() || legacy.is_some()
}

/// Replaces `path` with `contents`, atomically and durably (see the module's documentation).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let written = (|| -> std::io::Result<()> {
        let mut file = AtomicWriteFile::open(path)?;
        file.write_all(contents)?;
        file.commit()
    })();
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a checkpoint of `network`, `optimizer`, the weights' average
/// `ema` (when the run keeps one) and `meta` to `path`, the run directory's
/// way: atomically and durably, and never a state that is not finite
/// (`model::checkpoint::encode` refuses it).
pub fn write_checkpoint(
    path: &Path,
    network: &Network,
    optimizer: &Adam,
    ema: Option<&Ema>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let bytes = model::checkpoint::encode(network, optimizer, ema, meta, &path.display().to_string())?;
    let written = (|| -> std::io::Result<()> {
        let mut file = AtomicWriteFile::open(path)?;
        let (first, second) = bytes.split_at(bytes.len() / 2);
        file.write_all(first)?;
        fault::reach(fault::Point::CheckpointHalfWritten);
        file.write_all(second)?;
        file.commit()
    })();
    written.with_context(|| format!("cannot write {}", path.display()))?;
    fault::reach(fault::Point::CheckpointCommitted);
    Ok(())
}

/// Appends one JSON line to `path` with a single `write_all`, and syncs it to disk.
pub fn append_line(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} to append", path.display()))?;
    let line = format!("{value}\n");
    let appended = if fault::armed_at(fault::Point::MetricsHalfAppended) {
        // Only under fault injection: the line in two writes, to stop between them.
        let (first, second) = line.as_bytes().split_at(line.len() / 2);
        file.write_all(first)
            .and_then(|()| file.sync_data())
            .map(|()| {
                fault::reach(fault::Point::MetricsHalfAppended);
            })
            .and_then(|()| file.write_all(second))
    } else {
        file.write_all(line.as_bytes())
    };
    appended.and_then(|()| file.sync_data()).with_context(|| format!("cannot append to {}", path.display()))
}

/// The lines of `metrics.jsonl` a run resumed at `(epoch, step)` keeps: the
/// records of earlier epochs and the recipe changes made before `step` (a
/// change made at the checkpoint it resumes from came after that file was
/// written). Lines a killed run left half-written are dropped.
pub fn read_metrics_before(path: &Path, epoch: u64, step: u64) -> Result<Vec<Record>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(Record::parse)
        .filter(|record| match record {
            Record::RecipeChange(change) => change.step < step,
            Record::Epoch(record) => record.epoch < epoch,
            Record::Test(_) => false,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_epochs_and_never_best_or_last() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        for epoch in [3, 7, 11, 15] {
            fs::write(run.checkpoint(CheckpointFile::Epoch(epoch)), b"x").unwrap();
        }
        fs::write(run.best_checkpoint(), b"x").unwrap();
        fs::write(run.last_checkpoint(), b"x").unwrap();
        let removed = run.prune(2).unwrap();
        assert_eq!(removed, vec![run.checkpoint(CheckpointFile::Epoch(3)), run.checkpoint(CheckpointFile::Epoch(7))]);
        let left: Vec<u64> = run.epoch_checkpoints().unwrap().into_iter().map(|(epoch, _)| epoch).collect();
        assert_eq!(left, vec![11, 15]);
        assert!(run.best_checkpoint().exists() && run.last_checkpoint().exists());
        assert_eq!(run.checkpoint(CheckpointFile::Epoch(11)).file_name().unwrap(), "net-11.safetensors");
    }

    #[test]
    fn a_new_run_refuses_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(&dir.path().join("run"));
        run.check(false).unwrap();
        run.check(true).unwrap();
        run.create().unwrap();
        fs::write(run.metrics_path(), b"").unwrap();
        run.check(false).unwrap();
        fs::write(run.last_checkpoint(), b"x").unwrap();
        assert!(run.check(false).unwrap_err().to_string().contains("pass --resume"));
        run.check(true).unwrap();

        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(RunDir::new(&file).check(false).unwrap_err().to_string().contains("is a file"));
    }

    #[test]
    fn metrics_before_an_epoch_skip_later_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let epoch = |epoch: u64| serde_json::json!({"epoch": epoch, "loss": 0.5, "validation_accuracy": 0.9});
        let lines = |values: &[serde_json::Value]| values.iter().map(|value| format!("{value}\n")).collect::<String>();
        let values = |records: Vec<Record>| records.iter().map(Record::to_value).collect::<Vec<_>>();
        fs::write(&path, lines(&[epoch(0), epoch(1), epoch(2)]) + "{\"epo").unwrap();
        let kept = read_metrics_before(&path, 2, 100).unwrap();
        assert_eq!(values(kept), vec![epoch(0), epoch(1)]);
        assert!(read_metrics_before(&dir.path().join("none"), 5, 100).unwrap().is_empty());
        // Recipe changes are kept when made before the resumed step.
        let change = |step: u64| serde_json::json!({"recipe_change": {"epoch": 1, "step": step, "learning_rate": {"from": 1e-3, "to": 1e-4}}});
        fs::write(&path, lines(&[epoch(0), change(30), epoch(1), change(60)])).unwrap();
        let kept = read_metrics_before(&path, 2, 60).unwrap();
        assert_eq!(values(kept), vec![epoch(0), change(30), epoch(1)]);
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let message = write_atomically(&dir.path().join("no/such/dir/x"), b"x").unwrap_err().to_string();
        assert!(message.contains("cannot write") && message.contains("no/such/dir/x"), "{message}");
    }

    #[test]
    fn appended_lines_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        append_line(&path, &serde_json::json!({"epoch": 0})).unwrap();
        append_line(&path, &serde_json::json!({"epoch": 1})).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"epoch\":0}\n{\"epoch\":1}\n");
    }

    #[test]
    fn one_writer_at_a_time_and_a_released_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let held = run.lock().unwrap();
        assert_eq!(fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), std::process::id().to_string());
        let message = run.lock().unwrap_err().to_string();
        assert!(message.contains(&format!("is in use by pid {}", std::process::id())), "{message}");
        drop(held);
        // A lock file whose holder is gone (a dead process's id, no flock) is taken over.
        fs::write(dir.path().join(LOCK_FILE), b"999999999").unwrap();
        let _again = run.lock().unwrap();
        assert_eq!(fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), std::process::id().to_string());
    }

    #[test]
    fn cleanup_removes_only_this_programs_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let ours = [
            ".best.safetensors.a1B2c3",
            ".net-12.safetensors.Zz9yX8",
            ".metrics.jsonl.abcdef",
            "last.safetensors.4242.part",
        ];
        let theirs = [
            "notes.part",
            "data.bin.77.part",
            ".other.safetensors.abcdef",
            ".best.safetensors.toolong7",
            ".net-x.safetensors.abcdef",
            "best.safetensors",
        ];
        for name in ours.iter().chain(&theirs) {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut removed: Vec<String> = run
            .remove_temporaries()
            .unwrap()
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut expected: Vec<String> = ours.iter().map(|name| name.to_string()).collect();
        expected.sort();
        assert_eq!(removed, expected);
        for name in theirs {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        // Temporary files are not checkpoints.
        assert_eq!(run.checkpoints().unwrap(), vec![dir.path().join("best.safetensors")]);
    }
}
