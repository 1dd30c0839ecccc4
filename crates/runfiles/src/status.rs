//! `status.json`: where the latest attempt at a run stands, written by the
//! trainer when it starts (running, with its host and process) and when it
//! ends (finished, stopped or failed). A killed attempt leaves "running"
//! behind, which readers tell from a live one by its process.

use serde::{Deserialize, Serialize};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// A process is training it.
    Running,
    /// All its epochs and the test are done.
    Finished,
    /// Stopped by a signal after saving, or killed: `--resume` continues it.
    Stopped,
    /// Its latest attempt ended with an error (`message`): its files are whole, `--resume` retries.
    Failed,
}

/// The content of `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Where the latest attempt stands.
    pub state: State,
    /// The error of a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The machine the attempt runs or ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its process id there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Epochs completed when this was written.
    pub epoch: u64,
    /// Optimizer steps taken when this was written.
    pub step: u64,
}
