//! The records of `metrics.jsonl`.
//!
//! Fields are declared in alphabetical order: serde writes them in that
//! order, which is the order the trainer wrote before these types existed
//! (serde_json's maps are sorted), so files stay byte for byte the same.
//! Fields a record does not know are kept (`extra`) and written back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The best epoch so far (0-based), by validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<u64>,
    /// The epoch, 0-based.
    pub epoch: u64,
    /// Training images per second of the epoch's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_second: Option<f64>,
    /// The learning rate of the epoch's last step (as the schedule set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Seconds the epoch took, evaluation included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Optimizer steps of the run at the end of the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// Accuracy on a random sample of training images (`train_accuracy_images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// The steps' own accuracy in training mode, over the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_batch_accuracy: Option<f64>,
    /// Seconds of the epoch's training steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Accuracy on the validation images.
    pub validation_accuracy: f64,
    /// Mean loss on the validation images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Validation images classified correctly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_n_correct: Option<u64>,
    /// Fields this version does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The best checkpoint on the test images: the run's last record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// Test accuracy.
    pub accuracy: f64,
    /// The epoch (0-based) the tested checkpoint comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<u64>,
    /// That epoch's validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_validation_accuracy: Option<f64>,
    /// The checkpoint file tested, in the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Mean test loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Test images classified correctly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_correct: Option<u64>,
    /// Test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_images: Option<u64>,
    /// Fields this version does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A learning rate changed from one value to another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LearningRateChange {
    /// The rate before.
    pub from: f64,
    /// The rate after.
    pub to: f64,
}

/// An explicit change of the recipe made when a run was resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeChange {
    /// The epoch (0-based) the change applies from.
    pub epoch: u64,
    /// The learning rate's change, when it was changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<LearningRateChange>,
    /// The run's step when the change was made.
    pub step: u64,
    /// Fields this version does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A finished epoch: a flat object with `epoch`.
    Epoch(EpochRecord),
    /// `{"recipe_change": {...}}`.
    RecipeChange(RecipeChange),
    /// `{"test": {...}}`.
    Test(TestRecord),
}

impl Record {
    /// The record on a line, or `None` for a line that is not one (half
    /// written by a killed run, or something else).
    pub fn parse(line: &str) -> Option<Record> {
        let value: Value = serde_json::from_str(line).ok()?;
        Self::from_value(value)
    }

    /// The record a JSON value holds, if it is one.
    pub fn from_value(mut value: Value) -> Option<Record> {
        let object = value.as_object_mut()?;
        if let Some(test) = object.remove("test") {
            return serde_json::from_value(test).ok().map(Record::Test);
        }
        if let Some(change) = object.remove("recipe_change") {
            return serde_json::from_value(change).ok().map(Record::RecipeChange);
        }
        serde_json::from_value(value).ok().map(Record::Epoch)
    }

    /// The record as the JSON object of its line.
    pub fn to_value(&self) -> Value {
        let value = |record: Result<Value, serde_json::Error>| record.expect("records are plain data");
        match self {
            Record::Epoch(epoch) => value(serde_json::to_value(epoch)),
            Record::RecipeChange(change) => serde_json::json!({ "recipe_change": value(serde_json::to_value(change)) }),
            Record::Test(test) => serde_json::json!({ "test": value(serde_json::to_value(test)) }),
        }
    }

    /// The record's line, without the newline.
    pub fn to_line(&self) -> String {
        self.to_value().to_string()
    }
}

/// What `metrics.jsonl` holds so far, read leniently: a line that is not a
/// record is counted, never fatal (a run still writing, or killed mid-line).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Records {
    /// One record per finished epoch, in file order.
    pub epochs: Vec<EpochRecord>,
    /// The final test record, once the run has finished.
    pub test: Option<TestRecord>,
    /// Changes of the recipe made on resume, oldest first.
    pub recipe_changes: Vec<RecipeChange>,
    /// Lines that are not records.
    pub skipped_lines: usize,
}

impl Records {
    /// Reads the text of a `metrics.jsonl`.
    pub fn parse(text: &str) -> Records {
        let mut records = Records::default();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            match Record::parse(line) {
                Some(Record::Epoch(epoch)) => records.epochs.push(epoch),
                Some(Record::RecipeChange(change)) => records.recipe_changes.push(change),
                Some(Record::Test(test)) => records.test = Some(test),
                None => records.skipped_lines += 1,
            }
        }
        records
    }

    /// The best epoch (0-based) the newest record names.
    pub fn best_epoch(&self) -> Option<u64> {
        self.epochs.iter().rev().find_map(|record| record.best_epoch)
    }

    /// The validation accuracy of the best epoch.
    pub fn best_validation_accuracy(&self) -> Option<f64> {
        let best = self.best_epoch()?;
        self.epochs.iter().find(|record| record.epoch == best).map(|record| record.validation_accuracy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_write_back_the_lines_they_were_read_from() {
        let lines = [
            r#"{"best_epoch":0,"epoch":0,"images_per_second":771.5085131179457,"loss":0.19365150563715194,"seconds":73.493698474,"step":1100,"train_accuracy":0.984,"train_batch_accuracy":0.9419818181818181,"train_seconds":71.288908761,"validation_accuracy":0.9822,"validation_loss":0.0557631534948945,"validation_n_correct":4911}"#,
            r#"{"recipe_change":{"epoch":3,"learning_rate":{"from":0.001,"to":0.0005},"step":30}}"#,
            r#"{"test":{"accuracy":0.9957,"best_epoch":45,"best_validation_accuracy":0.996,"checkpoint":"best.safetensors","loss":0.0153,"n_correct":9957,"n_images":10000}}"#,
            r#"{"epoch":7,"loss":0.5,"validation_accuracy":0.9,"written_by":"a newer version"}"#,
        ];
        for line in lines {
            let record = Record::parse(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(record.to_line(), line, "the same bytes back");
        }
        assert_eq!(Record::parse(r#"{"epoch":"zero","loss":1,"validation_accuracy":1}"#), None);
        assert_eq!(Record::parse("[1, 2]"), None);
    }
}
