//! Step drops: the rate multiplied by `factor` every `every` epochs
//! (`step:15,0.1`), as PyTorch's `StepLR` with one epoch a step.

use std::sync::Arc;

use super::{Schedule, StepPosition, positive_number};

/// `factor` to the power of the number of whole `every`-epoch periods done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Epochs between drops (whole, at least 1).
    pub every: u64,
    /// The factor of each drop, in (0, 1].
    pub factor: f64,
}

impl Schedule for Step {
    fn factor(&self, at: StepPosition) -> f64 {
        let drops = at.step / (self.every * at.steps_per_epoch.max(1));
        self.factor.powf(drops as f64)
    }

    fn spec(&self) -> String {
        format!("step:{},{}", self.every, self.factor)
    }
}

/// `step:EVERY,FACTOR`: `EVERY` whole epochs, `FACTOR` in (0, 1].
pub(super) fn parse(settings: &str) -> Result<Arc<dyn Schedule>, String> {
    let example = "step:15,0.1";
    let Some((every, factor)) = settings.split_once(',') else {
        return Err(format!("expected EVERY,FACTOR (for example {example}), found {settings:?}"));
    };
    let every: u64 = every
        .trim()
        .parse()
        .ok()
        .filter(|&every| every > 0)
        .ok_or_else(|| format!("EVERY is a whole number of epochs, at least 1, found {every:?}"))?;
    let factor = positive_number(factor, "FACTOR", example)?;
    if factor > 1.0 {
        return Err(format!("FACTOR must be at most 1 (a drop), found {factor}"));
    }
    Ok(Arc::new(Step { every, factor }))
}
