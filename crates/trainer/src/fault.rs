//! Fault injection for the reliability tests, read by the normal binary (the
//! integration tests run the real executable). `TRAINER_FAULT=ACTION:POINT[:N]`
//! acts the `N`-th time (1-based, default 1) the run reaches `POINT`:
//!
//! - `pause`: print `FAULT POINT REACHED: POINT` on stderr and wait to be
//!   killed, so a test can SIGKILL the process inside that window and know it did;
//! - `abort`: abort the process there;
//! - `nan:after-epoch:N`: poison a weight with NaN after the `N`-th epoch's
//!   training (the state a diverging run could reach with a finite loss).
//!
//! Unset (always, outside tests), every call here is one relaxed load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The places a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Half of a checkpoint's bytes are in its temporary file.
    CheckpointHalfWritten,
    /// A checkpoint has been committed: renamed into place, folder synced.
    CheckpointCommitted,
    /// `net-{epoch}` is written; `best` and `last` are not yet.
    AfterEpochCheckpoint,
    /// Half of a `metrics.jsonl` line is appended.
    MetricsHalfAppended,
    /// An epoch's training steps are done (before it is evaluated or saved).
    AfterEpoch,
}

impl Point {
    const ALL: [Point; 5] = [
        Point::CheckpointHalfWritten,
        Point::CheckpointCommitted,
        Point::AfterEpochCheckpoint,
        Point::MetricsHalfAppended,
        Point::AfterEpoch,
    ];

    /// The name used in `TRAINER_FAULT`.
    pub fn name(self) -> &'static str {
        match self {
            Point::CheckpointHalfWritten => "checkpoint-half-written",
            Point::CheckpointCommitted => "checkpoint-committed",
            Point::AfterEpochCheckpoint => "after-epoch-checkpoint",
            Point::MetricsHalfAppended => "metrics-half-appended",
            Point::AfterEpoch => "after-epoch",
        }
    }
}

/// What to do at the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Say so and wait to be killed.
    Pause,
    /// Abort the process.
    Abort,
    /// Poison the network's state with NaN.
    Nan,
}

/// An armed fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What to do.
    pub action: Action,
    /// Where.
    pub point: Point,
    /// At which arrival (1-based).
    pub nth: u64,
}

/// The variable that arms a fault.
pub const VARIABLE: &str = "TRAINER_FAULT";

/// Parses `ACTION:POINT[:N]`.
pub fn parse(text: &str) -> Result<Fault, String> {
    let mut parts = text.split(':');
    let action = match parts.next() {
        Some("pause") => Action::Pause,
        Some("abort") => Action::Abort,
        Some("nan") => Action::Nan,
        other => return Err(format!("{VARIABLE}: unknown action {other:?}: expected pause, abort or nan")),
    };
    let point_name = parts.next().unwrap_or_default();
    let point = Point::ALL
        .into_iter()
        .find(|point| point.name() == point_name)
        .ok_or_else(|| format!("{VARIABLE}: unknown point {point_name:?}"))?;
    let nth = match parts.next() {
        None => 1,
        Some(n) => n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| format!("{VARIABLE}: bad count {n:?}"))?,
    };
    Ok(Fault { action, point, nth })
}

fn armed_fault() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| {
        let text = std::env::var(VARIABLE).ok()?;
        match parse(&text) {
            Ok(fault) => Some(fault),
            Err(message) => {
                // A test that sets a bad fault must not pass by running without one.
                eprintln!("{message}");
                std::process::exit(2);
            }
        }
    })
}

/// Whether a fault is armed at `point` (whatever its count).
pub fn armed_at(point: Point) -> bool {
    armed_fault().is_some_and(|fault| fault.point == point)
}

/// Marks one arrival at `point`; returns the action to take now, if any
/// (pause and abort are taken here and do not return).
pub fn reach(point: Point) -> Option<Action> {
    static ARRIVALS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
    let fault = armed_fault().filter(|fault| fault.point == point)?;
    let index = Point::ALL.iter().position(|candidate| *candidate == point).unwrap_or(0);
    let arrival = ARRIVALS[index].fetch_add(1, Ordering::SeqCst) + 1;
    if arrival != fault.nth {
        return None;
    }
    match fault.action {
        Action::Pause => {
            eprintln!("FAULT POINT REACHED: {}", point.name());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Action::Abort => std::process::abort(),
        Action::Nan => Some(Action::Nan),
    }
}

/// Poisons one row of the network's largest weight with NaN (the `nan` action).
pub fn poison(network: &model::Network) {
    if let Some((_, weight)) = network.named_tensors().into_iter().find(|(spec, _)| spec.name == "fc4.weight") {
        tch::no_grad(|| {
            let _ = weight.shallow_clone().narrow(0, 0, 1).fill_(f64::NAN);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_a_count_and_bad_ones_are_named() {
        assert_eq!(
            parse("pause:checkpoint-half-written").unwrap(),
            Fault { action: Action::Pause, point: Point::CheckpointHalfWritten, nth: 1 }
        );
        assert_eq!(
            parse("nan:after-epoch:2").unwrap(),
            Fault { action: Action::Nan, point: Point::AfterEpoch, nth: 2 }
        );
        assert!(parse("explode:after-epoch").unwrap_err().contains("unknown action"));
        assert!(parse("pause:nowhere").unwrap_err().contains("unknown point \"nowhere\""));
        assert!(parse("abort:after-epoch:0").unwrap_err().contains("bad count"));
    }
}
