//! The files of a run directory as types, shared by the program that
//! writes them (the trainer) and every program that reads them (`report`,
//! `serve`, resume). Without tch or any other heavy dependency, so that a
//! reader of runs needs nothing else.
//!
//! `config.json`'s `recipe` is a [`Recipe`]: what a resumed run must match.
//!
//! `metrics.jsonl` holds one JSON object a line, three kinds:
//!
//! - an [`EpochRecord`] per finished epoch (a flat object with `epoch`);
//! - `{"recipe_change": {...}}`, a [`RecipeChange`] made on resume;
//! - `{"test": {...}}`, the [`TestRecord`] of the best checkpoint, last.
//!
//! ```
//! use runfiles::{Record, Records};
//!
//! let text = "{\"epoch\":0,\"loss\":0.5,\"validation_accuracy\":0.9,\"best_epoch\":0}\n\
//!             {\"test\":{\"accuracy\":0.91}}\n{\"epo";
//! let records = Records::parse(text);
//! assert_eq!((records.epochs.len(), records.skipped_lines), (1, 1), "a torn last line is skipped");
//! assert_eq!(records.test.as_ref().unwrap().accuracy, 0.91);
//! assert_eq!(records.best_epoch(), Some(0));
//! assert!(matches!(Record::parse("{\"test\":{\"accuracy\":1.0}}"), Some(Record::Test(_))));
//! ```
#![warn(missing_docs)]

#[cfg(test)]
mod committed_runs;
mod recipe;
mod records;
mod status;
mod sweep;

pub use recipe::{Difference, Recipe};
pub use records::{EpochRecord, LearningRateChange, RecipeChange, Record, Records, TestRecord};
pub use status::{State, Status, this_host};
pub use sweep::{Group, NOT_RUNS, RunFiles, RunSummary, Spread, group_by_recipe};
