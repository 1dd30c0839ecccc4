//! The seed's schedule: the base rate at every step.

use std::sync::Arc;

use super::{Schedule, StepPosition};

/// The base rate at every step (`constant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constant;

impl Schedule for Constant {
    fn factor(&self, _at: StepPosition) -> f64 {
        1.0
    }

    fn spec(&self) -> String {
        "constant".to_owned()
    }
}

/// `constant` takes no settings.
pub(super) fn parse(settings: &str) -> Result<Arc<dyn Schedule>, String> {
    if settings.is_empty() {
        Ok(Arc::new(Constant))
    } else {
        Err(format!("`constant` takes no settings, found {settings:?}"))
    }
}
