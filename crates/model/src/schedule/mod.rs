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
mod cosine;
mod exponential;
mod step;
mod warmup;

use std::fmt;
use std::sync::Arc;

pub use self::constant::Constant;
pub use self::cosine::Cosine;
pub use self::exponential::Exponential;
pub use self::step::Step;
pub use self::warmup::Warmup;

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

    /// The 0-based epoch the step belongs to.
    pub fn epoch(self) -> u64 {
        self.step / self.steps_per_epoch.max(1)
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
pub const KINDS: &[(&str, Parser)] = &[
    ("constant", constant::parse),
    ("exponential", exponential::parse),
    ("cosine", cosine::parse),
    ("step", step::parse),
    ("warmup", warmup::parse),
];

/// A schedule's setting `name` read as a finite number.
fn number(text: &str, name: &str, example: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| format!("{name} is a number (for example {example}), found {text:?}"))
}

/// A schedule's setting `name` read as a finite number above 0.
fn positive_number(text: &str, name: &str, example: &str) -> Result<f64, String> {
    let value = number(text, name, example)?;
    if value > 0.0 { Ok(value) } else { Err(format!("{name} must be above 0, found {value}")) }
}

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
/// assert!(message.contains("known: constant, exponential, cosine, step, warmup"), "{message}");
/// assert_eq!(model::schedule::parse("warmup:1:cosine:50,0.01").unwrap().spec(), "warmup:1:cosine:50,0.01");
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
    fn every_spec_reads_back_to_itself() {
        let specs = ["constant", "exponential:0.95", "cosine:50,0.01", "step:15,0.1", "warmup:1:cosine:50,0"];
        for spec in specs {
            assert_eq!(parse(spec).unwrap().spec(), spec);
        }
        assert_eq!(specs.len(), KINDS.len(), "a new schedule gets a spec here");
        // Specs are recorded in their canonical form.
        assert_eq!(parse("exponential:0.950").unwrap().spec(), "exponential:0.95");
        assert_eq!(parse("cosine:50").unwrap().spec(), "cosine:50,0");
    }

    #[test]
    fn exponential_decays_once_per_epoch() {
        let rate = LearningRate::new(0.001, parse("exponential:0.5").unwrap());
        assert_eq!([rate.at(at(0)), rate.at(at(9)), rate.at(at(10)), rate.at(at(25))], [0.001, 0.001, 0.0005, 0.00025]);
    }

    #[test]
    fn cosine_falls_from_one_to_its_floor_then_stays() {
        let cosine = parse("cosine:2,0.1").unwrap();
        let factor = |step| cosine.factor(at(step));
        assert_eq!(factor(0), 1.0);
        assert!((factor(10) - 0.55).abs() < 1e-12, "half way: the mean of 1 and the floor");
        assert!((factor(20) - 0.1).abs() < 1e-12 && (factor(500) - 0.1).abs() < 1e-12);
        assert!(factor(5) > factor(6) && factor(14) > factor(15), "falls step by step");
    }

    #[test]
    fn step_drops_every_so_many_epochs() {
        let step = parse("step:2,0.1").unwrap();
        let factors: Vec<f64> = [0, 19, 20, 39, 40].iter().map(|&s| step.factor(at(s))).collect();
        assert_eq!(factors[..2], [1.0, 1.0]);
        assert!((factors[2] - 0.1).abs() < 1e-15 && (factors[3] - 0.1).abs() < 1e-15);
        assert!((factors[4] - 0.01).abs() < 1e-15);
    }

    #[test]
    fn warmup_ramps_linearly_then_leaves_the_inner_schedule() {
        let warm = parse("warmup:2:exponential:0.5").unwrap();
        // 20 steps of warm-up: step 0 gets 1/20, step 19 the full factor.
        assert!((warm.factor(at(0)) - 0.05).abs() < 1e-15);
        assert_eq!(warm.factor(at(9)), 0.5, "half way, in epoch 0");
        assert_eq!(warm.factor(at(19)), 0.5, "the ramp is done; epoch 1's decay");
        assert_eq!(warm.factor(at(30)), 0.125);
    }

    #[test]
    fn bad_settings_name_the_spec_and_the_setting() {
        for (spec, expected) in [
            ("exponential", "DECAY is a number"),
            ("exponential:1.5", "DECAY must be at most 1"),
            ("exponential:nan", "DECAY is a number"),
            ("cosine:0", "EPOCHS must be above 0"),
            ("cosine:50,2", "FLOOR is a factor of the base rate in [0, 1]"),
            ("step:15", "expected EVERY,FACTOR"),
            ("step:1.5,0.1", "EVERY is a whole number"),
            ("step:15,2", "FACTOR must be at most 1"),
            ("warmup:1", "expected EPOCHS:SCHEDULE"),
            ("warmup:1:sawtooth", "its schedule: unknown schedule \"sawtooth\""),
        ] {
            let message = parse(spec).unwrap_err().to_string();
            assert!(message.contains(&format!("{spec:?}")) && message.contains(expected), "{spec}: {message}");
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
