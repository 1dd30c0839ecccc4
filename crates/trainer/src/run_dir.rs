//! The run directory: checkpoints (`net-{epoch}`, `best`, `last`),
//! `config.json` and `metrics.jsonl`. Every file is written to a temporary
//! name and renamed, so a crash never leaves a half-written one behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Extension of checkpoint files.
pub const CHECKPOINT_EXTENSION: &str = "safetensors";

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
    /// must not be a file; a new run must not overwrite the checkpoints of an
    /// existing one, and a resumed run needs one. (Records without any
    /// checkpoint, left by a run stopped in its first epoch, are replaced.)
    pub fn check(&self, resume: bool) -> Result<()> {
        if self.dir.exists() && !self.dir.is_dir() {
            bail!("--save-dir {} is a file, not a directory", self.dir.display());
        }
        let has_checkpoints = !self.checkpoints()?.is_empty();
        if has_checkpoints && !resume {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --save-dir",
                self.dir.display()
            );
        }
        if resume && !has_checkpoints {
            bail!(
                "--resume: {} holds no checkpoint to resume from (a run stopped before its first epoch ended \
                 saves none): start it again without --resume",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Creates the directory.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| format!("cannot create --save-dir {}", self.dir.display()))
    }

    /// `net-{epoch}.safetensors` (0-based epoch, like the seed's `net-3.ckpt`).
    pub fn epoch_checkpoint(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("net-{epoch}.{CHECKPOINT_EXTENSION}"))
    }

    /// `best.safetensors`: the epoch with the best validation accuracy so far.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.dir.join(format!("best.{CHECKPOINT_EXTENSION}"))
    }

    /// `last.safetensors`: the newest state, written every epoch and on Ctrl-C.
    pub fn last_checkpoint(&self) -> PathBuf {
        self.dir.join(format!("last.{CHECKPOINT_EXTENSION}"))
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
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
                let epoch = stem.strip_prefix("net-")?.parse().ok()?;
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

    /// Removes temporary files that a killed run left behind.
    pub fn remove_temporaries(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Writes `contents` to `path` through a temporary file in the same folder
/// and a rename: readers see the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".{}.part", std::process::id()));
    let temp_path = PathBuf::from(temp_name);
    let written = (|| -> std::io::Result<()> {
        let mut temp = fs::File::create(&temp_path)?;
        temp.write_all(contents)?;
        temp.sync_all()?;
        fs::rename(&temp_path, path)
    })();
    written.map_err(|error| {
        let _ = fs::remove_file(&temp_path);
        anyhow::anyhow!("cannot write {}: {error}", path.display())
    })
}

/// Appends one JSON line to `path` and flushes it to disk.
pub fn append_line(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} to append", path.display()))?;
    writeln!(file, "{value}")
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// The epoch records of `metrics.jsonl` with `epoch < first_epoch` (the ones
/// a resumed run keeps); lines a killed run left half-written are dropped.
pub fn read_metrics_before(path: &Path, first_epoch: u64) -> Result<Vec<serde_json::Value>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| {
            record.get("epoch").and_then(serde_json::Value::as_u64).is_some_and(|epoch| epoch < first_epoch)
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
            fs::write(run.epoch_checkpoint(epoch), b"x").unwrap();
        }
        fs::write(run.best_checkpoint(), b"x").unwrap();
        fs::write(run.last_checkpoint(), b"x").unwrap();
        let removed = run.prune(2).unwrap();
        assert_eq!(removed, vec![run.epoch_checkpoint(3), run.epoch_checkpoint(7)]);
        let left: Vec<u64> = run.epoch_checkpoints().unwrap().into_iter().map(|(epoch, _)| epoch).collect();
        assert_eq!(left, vec![11, 15]);
        assert!(run.best_checkpoint().exists() && run.last_checkpoint().exists());
    }

    #[test]
    fn a_new_run_refuses_an_existing_one_and_a_resume_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(&dir.path().join("run"));
        run.check(false).unwrap();
        assert!(run.check(true).unwrap_err().to_string().contains("holds no checkpoint"));
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
        fs::write(&path, "{\"epoch\":0}\n{\"epoch\":1}\n{\"epoch\":2}\n{\"epo").unwrap();
        let kept = read_metrics_before(&path, 2).unwrap();
        assert_eq!(kept, vec![serde_json::json!({"epoch": 0}), serde_json::json!({"epoch": 1})]);
        assert!(read_metrics_before(&dir.path().join("none"), 5).unwrap().is_empty());
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
}
