//! The recipe in `config.json`: every setting that decides what a run
//! computes, so a resumed run must give the same. One struct: a setting
//! added here is recorded, read back and compared on resume because the
//! type has it; [`Recipe::differences`] compares every field there is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run computes: a resumed run must match it field for field.
/// Fields are in alphabetical order, as `config.json` has always listed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The augmentation (`none`, `seed`).
    pub augment: String,
    /// Images per training step.
    pub batch_size: u64,
    /// The data set (`mnist`, `fashion-mnist`).
    pub dataset: String,
    /// The decay of the weights' moving average, which is validated and tested (`None`: no average).
    pub ema: Option<f64>,
    /// Whether training runs each convolution's batch norm, pooling and
    /// leaky ReLU as one fused pass (another float rounding than ATen's
    /// calls); `false` where a recipe leaves it out, as every run from
    /// before the flag did.
    #[serde(default)]
    pub fused_tail: bool,
    /// Adam's learning rate the run started with.
    pub learning_rate: f64,
    /// The network (`intended`, `seed`).
    pub network: String,
    /// Stop after this many epochs without a better validation accuracy (`None`: run every epoch).
    pub patience: Option<u64>,
    /// The training step's arithmetic (`fp32`, `bf16`).
    pub precision: String,
    /// The learning-rate schedule's spec (`constant`).
    pub schedule: String,
    /// The random seed.
    pub seed: u64,
    /// Training images sampled each epoch for the training accuracy.
    pub train_accuracy_images: u64,
    /// Training images used (all when `None`).
    pub train_images: Option<u64>,
    /// Which block of `validation_size` training images is held out (0: the
    /// first, the seed's split; every run before the setting held out fold 0).
    #[serde(default)]
    pub validation_fold: u64,
    /// Training images held out for validation.
    pub validation_size: u64,
}

/// A setting whose recorded and given values differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The setting's name in `config.json`.
    pub key: String,
    /// What the run recorded.
    pub recorded: Value,
    /// What is given now.
    pub given: Value,
}

impl Recipe {
    /// A recorded recipe (`config.json`'s `recipe`), the keys it lacks
    /// (written before those settings existed) taken from `defaults`, what
    /// such a run used.
    ///
    /// # Errors
    /// A recipe that is not an object, holds a key this version does not
    /// know, or a value of the wrong type.
    pub fn from_recorded(recorded: &Value, defaults: &Recipe) -> Result<Recipe, serde_json::Error> {
        let Value::Object(recorded) = recorded else {
            return Err(serde::de::Error::custom(format!("the recipe is not an object: {recorded}")));
        };
        let mut filled = match serde_json::to_value(defaults)? {
            Value::Object(map) => map,
            _ => unreachable!("a struct serializes to an object"),
        };
        for (key, value) in recorded {
            filled.insert(key.clone(), value.clone());
        }
        serde_json::from_value(Value::Object(filled))
    }

    /// Every setting where `self` (recorded) and `given` differ, in
    /// alphabetical order: all fields are compared, whatever they are.
    ///
    /// ```
    /// # use runfiles::Recipe;
    /// let recorded = Recipe {
    ///     augment: "seed".into(), batch_size: 50, dataset: "mnist".into(), ema: None, fused_tail: false,
    ///     learning_rate: 0.001,
    ///     network: "intended".into(), patience: None, precision: "fp32".into(), schedule: "constant".into(), seed: 0,
    ///     train_accuracy_images: 500,
    ///     train_images: None, validation_fold: 0, validation_size: 5000,
    /// };
    /// let given = Recipe { batch_size: 100, ..recorded.clone() };
    /// let differences = recorded.differences(&given);
    /// assert_eq!(differences.len(), 1);
    /// assert_eq!((differences[0].key.as_str(), differences[0].given.clone()), ("batch_size", 100.into()));
    /// ```
    pub fn differences(&self, given: &Recipe) -> Vec<Difference> {
        let (Ok(Value::Object(recorded)), Ok(Value::Object(given))) =
            (serde_json::to_value(self), serde_json::to_value(given))
        else {
            unreachable!("a struct serializes to an object")
        };
        recorded
            .into_iter()
            .filter_map(|(key, recorded)| {
                let given = given.get(&key).cloned().unwrap_or(Value::Null);
                (recorded != given).then_some(Difference { key, recorded, given })
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The trainer's defaults: what tests compare with.
    pub(crate) fn recipe() -> Recipe {
        Recipe {
            augment: "seed".into(),
            batch_size: 50,
            dataset: "mnist".into(),
            ema: None,
            fused_tail: false,
            learning_rate: 0.001,
            network: "intended".into(),
            patience: None,
            precision: "fp32".into(),
            schedule: "constant".into(),
            seed: 0,
            train_accuracy_images: 500,
            train_images: None,
            validation_fold: 0,
            validation_size: 5000,
        }
    }

    /// Another value of the same JSON type.
    fn other(value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(format!("{text}-other")),
            Value::Number(number) if number.is_u64() => (number.as_u64().unwrap() + 1).into(),
            Value::Number(number) => (number.as_f64().unwrap() * 2.0).into(),
            Value::Null => 7.into(),
            Value::Bool(flag) => (!flag).into(),
            other => panic!("a recipe value of a new kind: {other}"),
        }
    }

    #[test]
    fn a_change_of_any_field_is_a_difference_naming_it() {
        let base = recipe();
        let Value::Object(fields) = serde_json::to_value(&base).unwrap() else { unreachable!() };
        assert_eq!(fields.len(), 15, "a new field: this test covers it by itself");
        for (key, value) in &fields {
            let mut changed = fields.clone();
            changed.insert(key.clone(), other(value));
            let changed: Recipe = serde_json::from_value(Value::Object(changed)).unwrap();
            let differences = base.differences(&changed);
            assert_eq!(differences.len(), 1, "{key}");
            assert_eq!(&differences[0].key, key);
            assert_eq!(&differences[0].recorded, value);
        }
        assert!(base.differences(&base).is_empty());
    }

    #[test]
    fn keys_an_older_run_lacks_read_as_the_defaults_and_unknown_ones_are_refused() {
        let defaults = recipe();
        let older = serde_json::json!({"augment": "none", "batch_size": 100, "dataset": "mnist",
            "learning_rate": 0.01, "network": "seed", "seed": 3, "train_images": 1000, "validation_size": 100});
        let read = Recipe::from_recorded(&older, &defaults).unwrap();
        assert_eq!((read.precision.as_str(), read.train_accuracy_images), ("fp32", 500));
        assert_eq!((read.augment.as_str(), read.batch_size, read.train_images), ("none", 100, Some(1000)));
        assert_eq!(read.schedule, "constant", "runs from before schedules were recorded had none");
        assert_eq!((read.patience, read.ema), (None, None), "runs from before these ran every epoch, unaveraged");
        assert!(!read.fused_tail, "runs from before the flag trained with ATen's calls");
        assert_eq!(read.validation_fold, 0, "runs from before folds held out the first images");
        let unknown = serde_json::json!({"warmup": 5});
        let message = Recipe::from_recorded(&unknown, &defaults).unwrap_err().to_string();
        assert!(message.contains("unknown field `warmup`"), "{message}");
        assert!(Recipe::from_recorded(&serde_json::json!([1]), &defaults).is_err());
    }
}
