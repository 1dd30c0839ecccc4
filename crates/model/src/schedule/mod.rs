//! Learning-rate schedules: the rate of every optimizer step, as a value a
//! run records in its recipe (`schedule`, a spec such as `constant`) and
//! applies before each step.
//!
//! A schedule gives a factor of the run's base rate (`--learning-rate`) at
//! a position in the run; [`LearningRate`] is a run's whole timeline: the
//! recipe's schedule from step 0 and each explicit change (an override on
//! resume) from the step it was made at. The optimizer's rate is only ever
//! set from the timeline, so a schedule and an override cannot fight.
//!
//! Adding a schedule is one file in this folder implementing [`Schedule`]
//! and one line in [`KINDS`].

mod constant;

use std::fmt;
use std::sync::Arc;

pub use self::constant::Constant;

/// Where a step is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPosition {
    /// Optimizer steps taken before this one (0-based step of the run).
    pub step: u64,
    /// Steps in one epoch.
    pub steps_per_epoch: u64,
}

impl StepPosition {
    /// The position in epochs, fractional within an epoch (step 0 of epoch 2 is 2.0).
    pub fn epochs(self) -> f64 {
        self.step as f64 / self.steps_per_epoch.max(1) as f64
    }
}

/// A learning-rate schedule: a factor of the base rate at each step.
pub trait Schedule: fmt::Debug + Send + Sync {
    /// The factor of the base rate for the step at `at` (1.0 keeps the base rate bit for bit).
    fn factor(&self, at: StepPosition) -> f64;
    /// The spec this schedule is recorded as; [`parse`] reads it back to the same schedule.
    fn spec(&self) -> String;
}

/// A schedule's parser: reads what follows `NAME` in a spec (`""`, or the text after `NAME:`).
type Parser = fn(&str) -> Result<Arc<dyn Schedule>, String>;

/// Every schedule this build knows, by name: one line each.
pub const KINDS: &[(&str, Parser)] = &[("constant", constant::parse)];

/// A spec that names no schedule or whose settings are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("learning-rate schedule {spec:?}: {reason}")]
pub struct ScheduleError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The schedule a spec names: `NAME` or `NAME:SETTINGS`.
///
/// ```
/// let schedule = model::schedule::parse("constant").unwrap();
/// assert_eq!(schedule.spec(), "constant");
/// let message = model::schedule::parse("cosine-ish").unwrap_err().to_string();
/// assert!(message.contains("known: constant"), "{message}");
/// ```
///
/// # Errors
/// An unknown name (the message lists the known ones) or settings the schedule refuses.
pub fn parse(spec: &str) -> Result<Arc<dyn Schedule>, ScheduleError> {
    let (name, settings) = spec.split_once(':').unwrap_or((spec, ""));
    let error = |reason: String| ScheduleError { spec: spec.to_owned(), reason };
    let Some((_, parser)) = KINDS.iter().find(|(known, _)| *known == name) else {
        let known: Vec<&str> = KINDS.iter().map(|(known, _)| *known).collect();
        return Err(error(format!("unknown schedule {name:?} (known: {})", known.join(", "))));
    };
    parser(settings).map_err(error)
}

/// One stretch of a run's timeline.
#[derive(Debug, Clone)]
struct Segment {
    /// The first step it applies to.
    from_step: u64,
    /// The base rate its factors multiply.
    base_rate: f64,
    schedule: Arc<dyn Schedule>,
}

/// A run's learning rate at every step: the recipe's base rate and schedule
/// from step 0, then each explicit change from its step on.
///
/// ```
/// use model::schedule::{Constant, LearningRate, StepPosition};
/// let mut rate = LearningRate::new(0.001, model::schedule::parse("constant").unwrap());
/// rate.change_from(100, 0.0005, std::sync::Arc::new(Constant));
/// let at = |step| StepPosition { step, steps_per_epoch: 10 };
/// assert_eq!((rate.at(at(99)), rate.at(at(100))), (0.001, 0.0005));
/// ```
#[derive(Debug, Clone)]
pub struct LearningRate {
    segments: Vec<Segment>,
}

impl LearningRate {
    /// `schedule` over `base_rate` from the run's first step.
    pub fn new(base_rate: f64, schedule: Arc<dyn Schedule>) -> Self {
        Self { segments: vec![Segment { from_step: 0, base_rate, schedule }] }
    }

    /// From `step` on, `schedule` over `base_rate`; a change made at a later
    /// step before (a timeline of steps since undone) is dropped.
    pub fn change_from(&mut self, step: u64, base_rate: f64, schedule: Arc<dyn Schedule>) {
        // The first segment starts at 0, so one always remains below a later step.
        self.segments.retain(|segment| segment.from_step < step);
        self.segments.push(Segment { from_step: step, base_rate, schedule });
    }

    /// The rate of the step at `at`.
    pub fn at(&self, at: StepPosition) -> f64 {
        let segment = self.segment_at(at.step);
        segment.base_rate * segment.schedule.factor(at)
    }

    /// The spec of the schedule in force at `step`.
    pub fn spec_at(&self, step: u64) -> String {
        self.segment_at(step).schedule.spec()
    }

    fn segment_at(&self, step: u64) -> &Segment {
        // Segments are in step order and the first starts at step 0.
        self.segments.iter().rev().find(|segment| segment.from_step <= step).unwrap_or(&self.segments[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule that halves the rate every epoch, as a new schedule would be written.
    #[derive(Debug)]
    struct HalvingEachEpoch;

    impl Schedule for HalvingEachEpoch {
        fn factor(&self, at: StepPosition) -> f64 {
            0.5f64.powi(at.epochs().floor() as i32)
        }
        fn spec(&self) -> String {
            "halving".to_owned()
        }
    }

    fn at(step: u64) -> StepPosition {
        StepPosition { step, steps_per_epoch: 10 }
    }

    #[test]
    fn every_known_spec_reads_back_to_itself() {
        for (name, _) in KINDS {
            assert_eq!(parse(name).unwrap().spec(), *name);
        }
    }

    #[test]
    fn constant_keeps_the_base_rate_bit_for_bit() {
        let rate = LearningRate::new(0.001, parse("constant").unwrap());
        for step in [0, 1, 999, u64::MAX / 2] {
            assert_eq!(rate.at(at(step)).to_bits(), 0.001f64.to_bits());
        }
        let message = parse("constant:3").unwrap_err().to_string();
        assert!(message.contains("\"constant:3\"") && message.contains("takes no settings"), "{message}");
    }

    #[test]
    fn an_override_replaces_the_schedule_from_its_step_and_a_later_one_is_undone_by_an_earlier() {
        let mut rate = LearningRate::new(0.008, Arc::new(HalvingEachEpoch));
        assert_eq!([rate.at(at(0)), rate.at(at(10)), rate.at(at(25))], [0.008, 0.004, 0.002]);
        rate.change_from(25, 0.0001, Arc::new(Constant));
        assert_eq!([rate.at(at(24)), rate.at(at(25)), rate.at(at(90))], [0.002, 0.0001, 0.0001]);
        assert_eq!((rate.spec_at(24).as_str(), rate.spec_at(25).as_str()), ("halving", "constant"));
        // Resumed from step 20 with another override: the change at 25 belonged to undone steps.
        rate.change_from(20, 0.0003, Arc::new(Constant));
        assert_eq!([rate.at(at(19)), rate.at(at(20)), rate.at(at(30))], [0.004, 0.0003, 0.0003]);
        rate.change_from(0, 0.5, Arc::new(Constant));
        assert_eq!(rate.at(at(0)), 0.5);
    }
}
