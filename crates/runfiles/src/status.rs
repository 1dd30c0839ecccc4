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

impl Status {
    /// Whether the process this status names could still be running its
    /// run: checked (`/proc/PID`) when it names this machine or no machine,
    /// assumed when it names another one (a cluster's node, which only that
    /// node can tell). A status that names no process is not alive.
    ///
    /// ```
    /// use runfiles::{State, Status};
    ///
    /// let mine = Status { state: State::Running, message: None, host: None, pid: Some(std::process::id()), epoch: 0, step: 0 };
    /// assert!(mine.process_alive());
    /// let elsewhere = Status { host: Some("another-node.invalid".into()), pid: Some(u32::MAX), ..mine.clone() };
    /// assert!(elsewhere.process_alive());
    /// let gone = Status { host: None, pid: Some(u32::MAX), ..mine };
    /// assert!(!gone.process_alive());
    /// ```
    pub fn process_alive(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        let on_this_machine = self.host.is_none() || self.host == this_host();
        !on_this_machine || std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// This machine's name, as `status.json` records it (the kernel's host name).
pub fn this_host() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
