//! Reading the files of `--runs` safely: only regular files (never a FIFO,
//! a device or a symbolic link, which could hang a reader or lead outside
//! the folder), only up to a size cap, and each file parsed once per
//! version: the parsed value, or the failure, is kept until the file's
//! size, modification time or inode changes.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What identifies one version of a file: a rewrite (even an atomic rename
/// over it) or an append changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i128,
    /// Inode number (a file renamed over the old one has a new inode).
    pub inode: u64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(metadata: &Metadata) -> Self {
        let modified_ns = i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec());
        Self { len: metadata.len(), modified_ns, inode: metadata.ino() }
    }
}

/// Why a file of a run was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// Nothing there.
    #[error("{0}: no such file")]
    Missing(String),
    /// A symbolic link, FIFO, socket, device or folder.
    #[error("{name}: not a regular file ({kind}); only regular files inside --runs are read")]
    NotRegular {
        /// The file's name.
        name: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// Bigger than the cap.
    #[error("{name}: {len} bytes, more than the limit of {limit} bytes; not read")]
    TooLarge {
        /// The file's name.
        name: String,
        /// Its size.
        len: u64,
        /// The cap.
        limit: u64,
    },
    /// The file could not be opened or read.
    #[error("{name}: cannot read: {reason}")]
    Unreadable {
        /// The file's name.
        name: String,
        /// The system's reason.
        reason: String,
    },
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

fn kind_of(metadata: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// The stamp of `path` if it is a regular file, without following a
/// symbolic link at the last component.
///
/// # Errors
/// [`FileProblem::Missing`] or [`FileProblem::NotRegular`].
pub fn regular_stamp(path: &Path) -> Result<FileStamp, FileProblem> {
    let metadata = std::fs::symlink_metadata(path).map_err(|_| FileProblem::Missing(display_name(path)))?;
    if !metadata.file_type().is_file() {
        return Err(FileProblem::NotRegular { name: display_name(path), kind: kind_of(&metadata) });
    }
    Ok(FileStamp::of(&metadata))
}

/// Reads `path` whole if it is a regular file of at most `limit` bytes.
/// Opened without following a link and without blocking (a FIFO swapped in
/// after the check cannot hang the reader), then checked again on the open
/// file, so what is read is what was checked.
///
/// # Errors
/// Any [`FileProblem`].
pub fn read_regular(path: &Path, limit: u64) -> Result<(FileStamp, Vec<u8>), FileProblem> {
    let name = display_name(path);
    let unreadable = |error: std::io::Error| FileProblem::Unreadable { name: name.clone(), reason: error.to_string() };
    regular_stamp(path)?;
    let file =
        File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|error| {
            match error.raw_os_error() {
                Some(libc::ELOOP) => FileProblem::NotRegular { name: name.clone(), kind: "a symbolic link" },
                Some(libc::ENOENT) => FileProblem::Missing(name.clone()),
                _ => unreadable(error),
            }
        })?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.file_type().is_file() {
        return Err(FileProblem::NotRegular { name, kind: kind_of(&metadata) });
    }
    if metadata.len() > limit {
        return Err(FileProblem::TooLarge { name, len: metadata.len(), limit });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // A file growing while it is read (a run appending a record) is cut at the cap.
    file.take(limit).read_to_end(&mut bytes).map_err(unreadable)?;
    Ok((FileStamp::of(&metadata), bytes))
}

/// Parsed files by path, each kept with the stamp of the version it came
/// from. `T` is the parsed value or the failure: both are remembered until
/// the file changes, so a broken file costs one read, not one per request.
#[derive(Debug)]
pub struct StampCache<T> {
    entries: Mutex<HashMap<PathBuf, (FileStamp, T)>>,
}

impl<T> Default for StampCache<T> {
    fn default() -> Self {
        Self { entries: Mutex::default() }
    }
}

impl<T: Clone> StampCache<T> {
    /// The value for the current version of `path`, computed by `make` when
    /// the file is new or has changed since. A file that is not a regular
    /// file is not cached (its problem is cheap to find again).
    ///
    /// ```
    /// use serve::files::{FileProblem, StampCache};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("n.txt");
    /// std::fs::write(&path, "1").unwrap();
    /// let cache = StampCache::default();
    /// let mut reads = 0;
    /// let mut read = |path: &std::path::Path| { reads += 1; std::fs::read_to_string(path).unwrap() };
    /// assert_eq!(cache.get(&path, &mut read).unwrap(), "1");
    /// assert_eq!(cache.get(&path, &mut read).unwrap(), "1");
    /// assert_eq!(reads, 1, "the second answer came from the cache");
    /// ```
    ///
    /// # Errors
    /// [`FileProblem::Missing`] or [`FileProblem::NotRegular`].
    pub fn get(&self, path: &Path, make: impl FnOnce(&Path) -> T) -> Result<T, FileProblem> {
        let stamp = regular_stamp(path)?;
        if let Some((cached, value)) = self.lock().get(path)
            && *cached == stamp
        {
            return Ok(value.clone());
        }
        let value = make(path);
        // Stamped with the version seen before reading: a change during the
        // read makes the next request read again, never keeps stale data.
        self.lock().insert(path.to_path_buf(), (stamp, value.clone()));
        Ok(value)
    }

    /// Forgets the entries whose paths are not in `keep` (runs deleted).
    pub fn retain(&self, keep: impl Fn(&Path) -> bool) {
        self.lock().retain(|path, _| keep(path));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (FileStamp, T)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics.jsonl");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_regular(&file, 10).unwrap().1, b"0123456789");
        let too_large = read_regular(&file, 9).unwrap_err();
        assert!(too_large.to_string().contains("10 bytes, more than the limit of 9"), "{too_large}");

        let fifo = dir.path().join("fifo.jsonl");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(status.success());
        let started = std::time::Instant::now();
        let problem = read_regular(&fifo, 100).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "a FIFO must not block");
        assert_eq!(problem, FileProblem::NotRegular { name: "fifo.jsonl".into(), kind: "a FIFO" });

        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_regular(&link, 100).unwrap_err(),
            FileProblem::NotRegular { name: "link.jsonl".into(), kind: "a symbolic link" }
        );
        assert_eq!(read_regular(&dir.path().join("none"), 100).unwrap_err(), FileProblem::Missing("none".into()));
    }

    #[test]
    fn the_cache_reads_again_only_when_the_file_changes_and_remembers_failures() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("best.safetensors");
        std::fs::write(&file, "broken").unwrap();
        let cache: StampCache<Result<String, String>> = StampCache::default();
        let reads = std::cell::Cell::new(0);
        let parse = |path: &Path| {
            reads.set(reads.get() + 1);
            let text = std::fs::read_to_string(path).unwrap();
            if text == "broken" { Err("not a checkpoint".to_owned()) } else { Ok(text) }
        };
        for _ in 0..5 {
            assert_eq!(cache.get(&file, parse).unwrap(), Err("not a checkpoint".to_owned()));
        }
        assert_eq!(reads.get(), 1, "the failure is remembered");
        // A different size: file times can be as coarse as a clock tick.
        std::fs::write(&file, "fixed, longer").unwrap();
        assert_eq!(cache.get(&file, parse).unwrap(), Ok("fixed, longer".to_owned()));
        assert_eq!(reads.get(), 2, "a changed file is read again");
    }
}
