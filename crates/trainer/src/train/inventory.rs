//! What a run directory holds when the run opens: each checkpoint file and
//! what its header says, read once (resuming, `best` and `last` all ask).

use std::path::{Path, PathBuf};

use anyhow::Result;
use model::{CheckpointMeta, checkpoint};

use crate::run_dir::RunDir;

/// One checkpoint file and its header.
#[derive(Debug)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    /// Its metadata, or why its header does not read.
    pub meta: Result<CheckpointMeta, String>,
}

/// The run directory's checkpoints, their headers read once.
#[derive(Debug, Default)]
pub struct Inventory {
    entries: Vec<Entry>,
    last: PathBuf,
}

impl Inventory {
    /// Lists `dir`'s checkpoints and reads each header.
    pub fn take(dir: &RunDir) -> Result<Self> {
        let entries = dir
            .checkpoints()?
            .into_iter()
            .map(|path| {
                let meta = checkpoint::read_meta(&path).map(|(_, meta)| meta).map_err(|error| error.to_string());
                Entry { path, meta }
            })
            .collect();
        Ok(Self { entries, last: dir.last_checkpoint() })
    }

    /// Whether the directory holds no checkpoint at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The metadata of `path`'s header, when the file was there and read.
    pub fn meta(&self, path: &Path) -> Option<&CheckpointMeta> {
        self.entries.iter().find(|entry| entry.path == path).and_then(|entry| entry.meta.as_ref().ok())
    }

    /// The files whose headers read, newest first (most optimizer steps;
    /// `last` first on a tie), and why each other file was left out.
    pub fn newest_first(&self) -> (Vec<&Path>, Vec<String>) {
        let mut readable: Vec<(u64, bool, &Path)> = Vec::new();
        let mut unreadable = Vec::new();
        for entry in &self.entries {
            match &entry.meta {
                Ok(meta) => readable.push((meta.step, entry.path == self.last, &entry.path)),
                Err(error) => {
                    tracing::warn!("skipping {}: {error}", entry.path.display());
                    unreadable.push(error.clone());
                }
            }
        }
        readable.sort_by_key(|(step, is_last, _)| std::cmp::Reverse((*step, *is_last)));
        (readable.into_iter().map(|(_, _, path)| path).collect(), unreadable)
    }
}
