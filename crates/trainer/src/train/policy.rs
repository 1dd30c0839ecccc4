//! Which checkpoints a run writes, when, and which it prunes: in one place.

use crate::run_dir::CheckpointFile;

/// The checkpoint policy of a run (`--save-step`, `--keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Write `net-{epoch}` after every this many epochs.
    pub save_step: u64,
    /// Keep the newest this many `net-{epoch}` files.
    pub keep: usize,
}

impl CheckpointPolicy {
    /// The files written at the end of 0-based `epoch`, in this order:
    /// `net-{epoch}` every `save_step` epochs (then older ones beyond `keep`
    /// are pruned), `best` when validation improved, and always `last`, so
    /// `last` is never older than any other file of the run.
    pub fn at_epoch_end(&self, epoch: u64, improved: bool) -> Vec<CheckpointFile> {
        let mut files = Vec::with_capacity(3);
        if (epoch + 1).is_multiple_of(self.save_step) {
            files.push(CheckpointFile::Epoch(epoch));
        }
        if improved {
            files.push(CheckpointFile::Best);
        }
        files.push(CheckpointFile::Last);
        files
    }

    /// The file written when the run is interrupted mid-epoch: `last` only
    /// (the others describe whole epochs).
    pub fn on_interrupt(&self) -> CheckpointFile {
        CheckpointFile::Last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_write_numbered_files_on_the_save_step_best_on_improvement_and_last_always() {
        let policy = CheckpointPolicy { save_step: 4, keep: 2 };
        assert_eq!(policy.at_epoch_end(0, true), vec![CheckpointFile::Best, CheckpointFile::Last]);
        assert_eq!(policy.at_epoch_end(2, false), vec![CheckpointFile::Last]);
        assert_eq!(
            policy.at_epoch_end(3, true),
            vec![CheckpointFile::Epoch(3), CheckpointFile::Best, CheckpointFile::Last]
        );
        assert_eq!(policy.at_epoch_end(7, false), vec![CheckpointFile::Epoch(7), CheckpointFile::Last]);
        assert_eq!(policy.on_interrupt(), CheckpointFile::Last);
    }
}
