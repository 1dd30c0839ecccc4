//! Per-epoch exponential decay: the base rate times `decay` to the power of
//! the epoch (`exponential:0.95`), as Keras's `ExponentialDecay` with
//! `staircase=True` and one epoch a step of the decay.

use std::sync::Arc;

use super::{Schedule, StepPosition, positive_number};

/// `decay` to the power of the 0-based epoch (constant within an epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    /// The factor applied at each new epoch, in (0, 1].
    pub decay: f64,
}

impl Schedule for Exponential {
    fn factor(&self, at: StepPosition) -> f64 {
        self.decay.powf(at.epoch() as f64)
    }

    fn spec(&self) -> String {
        format!("exponential:{}", self.decay)
    }
}

/// `exponential:DECAY`, with `DECAY` in (0, 1].
pub(super) fn parse(settings: &str) -> Result<Arc<dyn Schedule>, String> {
    let decay = positive_number(settings, "DECAY", "exponential:0.95")?;
    if decay > 1.0 {
        return Err(format!("DECAY must be at most 1 (a rate that shrinks), found {decay}"));
    }
    Ok(Arc::new(Exponential { decay }))
}
