//! An exponential moving average of a network's weights (Polyak averaging,
//! as TensorFlow's `ExponentialMovingAverage` and timm's `ModelEmaV2`):
//! after each optimizer step every tensor of the average, batch norm's
//! moving statistics included, moves towards the trained network's by
//! `1 - decay`. Evaluating the average instead of the last weights smooths
//! the step-to-step noise of training.
//!
//! Early on, the decay is `min(decay, (1 + step) / (10 + step))` (the
//! `num_updates` rule of TensorFlow), so the random initial weights are
//! forgotten within the first few hundred steps instead of weighing on the
//! average for thousands. The decay depends on the step alone, so a resumed
//! run continues the average exactly.

use crate::{ModelError, Network};

/// The average of a network's weights over the steps of its training.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    network: Network,
}

impl Ema {
    /// An average with `decay` that starts at `network`'s weights.
    ///
    /// # Errors
    /// [`ModelError::Setting`] for a decay outside (0, 1); a
    /// libtorch error when the device cannot hold the copy.
    pub fn new(decay: f64, network: &Network) -> Result<Self, ModelError> {
        Self::check_decay(decay)?;
        Ok(Self { decay, network: network.detached_copy()? })
    }

    /// An average with `decay` that is `network` (read from a checkpoint).
    ///
    /// # Errors
    /// [`ModelError::Setting`] for a decay outside (0, 1).
    pub fn from_network(decay: f64, network: Network) -> Result<Self, ModelError> {
        Self::check_decay(decay)?;
        Ok(Self { decay, network })
    }

    fn check_decay(decay: f64) -> Result<(), ModelError> {
        if decay > 0.0 && decay < 1.0 {
            Ok(())
        } else {
            Err(ModelError::Setting {
                setting: "the weights' average decay",
                reason: format!("must be in (0, 1), found {decay}"),
            })
        }
    }

    /// The decay used after the 0-based optimizer step `step`.
    ///
    /// ```
    /// # use model::{Architecture, Network, ema::Ema};
    /// let network = Network::new(Architecture::Intended, tch::Device::Cpu).unwrap();
    /// let ema = Ema::new(0.999, &network).unwrap();
    /// assert_eq!(ema.decay_at(0), 0.1);
    /// assert_eq!(ema.decay_at(100_000), 0.999);
    /// ```
    pub fn decay_at(&self, step: u64) -> f64 {
        self.decay.min((1 + step) as f64 / (10 + step) as f64)
    }

    /// The decay asked for.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// The averaged network, to evaluate or save.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The averaged network, kept.
    pub fn into_network(self) -> Network {
        self.network
    }

    /// Moves every tensor of the average towards `trained`'s after the
    /// 0-based optimizer step `step`: `average += (1 - decay) * (trained - average)`.
    ///
    /// # Errors
    /// A libtorch error (networks of other shapes or devices).
    pub fn update(&mut self, trained: &Network, step: u64) -> Result<(), ModelError> {
        let weight = 1.0 - self.decay_at(step);
        tch::no_grad(|| {
            for ((_, average), (_, now)) in self.network.named_tensors().into_iter().zip(trained.named_tensors()) {
                // A second handle on the same storage: the in-place update writes the average itself.
                let _ = average.shallow_clone().f_lerp_(now, weight)?;
            }
            Ok::<(), tch::TchError>(())
        })
        .map_err(ModelError::libtorch("updating the weights' moving average"))
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::Architecture;

    #[test]
    fn the_average_moves_towards_the_trained_weights_by_one_minus_the_decay() {
        tch::manual_seed(1);
        let start = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let mut ema = Ema::new(0.9, &start).unwrap();
        let trained = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        // Step 1000: the decay is 0.9 (the early rule gives more).
        ema.update(&trained, 1000).unwrap();
        for (((spec, average), (_, before)), (_, now)) in
            ema.network().named_tensors().into_iter().zip(start.named_tensors()).zip(trained.named_tensors())
        {
            let expected = before * 0.9 + now * 0.1;
            let gap = (average - expected).abs().max().double_value(&[]);
            assert!(gap < 1e-6, "{}: {gap}", spec.name);
        }
        // The early rule: after step 0 the average is 90% the trained weights.
        let mut early = Ema::new(0.999, &start).unwrap();
        early.update(&trained, 0).unwrap();
        let (_, average) = early.network().named_tensors()[0];
        let expected = start.named_tensors()[0].1 * 0.1 + trained.named_tensors()[0].1 * 0.9;
        assert!((average - expected).abs().max().double_value(&[]) < 1e-6);
        assert_eq!(average.kind(), Kind::Float);
    }

    #[test]
    fn a_decay_outside_zero_to_one_is_refused() {
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        for decay in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
            let message = Ema::new(decay, &network).unwrap_err().to_string();
            assert!(message.contains("must be in (0, 1)"), "{decay}: {message}");
        }
    }
}
