//! A linear warm-up before any other schedule (`warmup:1:cosine:50,0.01`):
//! the factor rises from `1/n` at the first step to 1 after `epochs`
//! epochs of `n` steps, times the inner schedule's factor throughout.

use std::sync::Arc;

use super::{Schedule, StepPosition, positive_number};

/// The inner schedule, scaled up linearly over the first `epochs` epochs.
#[derive(Debug, Clone)]
pub struct Warmup {
    /// Epochs of warm-up.
    pub epochs: f64,
    /// The schedule it scales.
    pub inner: Arc<dyn Schedule>,
}

impl Schedule for Warmup {
    fn factor(&self, at: StepPosition) -> f64 {
        let warmup_steps = self.epochs * at.steps_per_epoch.max(1) as f64;
        let ramp = ((at.step + 1) as f64 / warmup_steps).min(1.0);
        ramp * self.inner.factor(at)
    }

    fn spec(&self) -> String {
        format!("warmup:{}:{}", self.epochs, self.inner.spec())
    }
}

/// `warmup:EPOCHS:SPEC`, `SPEC` any other schedule.
pub(super) fn parse(settings: &str) -> Result<Arc<dyn Schedule>, String> {
    let example = "warmup:1:cosine:50,0.01";
    let Some((epochs, inner)) = settings.split_once(':') else {
        return Err(format!("expected EPOCHS:SCHEDULE (for example {example}), found {settings:?}"));
    };
    let epochs = positive_number(epochs, "EPOCHS", example)?;
    let inner = super::parse(inner).map_err(|error| format!("its schedule: {}", error.reason))?;
    Ok(Arc::new(Warmup { epochs, inner }))
}
