//! Adam written over tensors, so that its whole state is ours to save and
//! restore (tch's built-in optimizers cannot save theirs: tch-rs #360). The
//! update is `torch.optim.Adam`'s formula, computed in place with one scratch
//! buffer per parameter, so a step allocates nothing (what that saved is in
//! `docs/PERFORMANCE.md`).

use tch::Tensor;

use crate::ModelError;

/// Adam's hyper-parameters; the defaults are the seed's (and PyTorch's, but the learning rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub learning_rate: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { learning_rate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    }
}

/// The optimizer and its state: the step count and both moments of every parameter.
#[derive(Debug)]
pub struct Adam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    step: u64,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// One work buffer per parameter, reused every step (not part of the state).
    scratch: Vec<Tensor>,
}

impl Adam {
    /// A fresh optimizer for `parameters` (zero moments, step 0).
    pub fn new(parameters: &[&Tensor], config: AdamConfig) -> Self {
        let zeros = || parameters.iter().map(|parameter| parameter.zeros_like()).collect();
        Self { config, step: 0, exp_avg: zeros(), exp_avg_sq: zeros(), scratch: Vec::new() }
    }

    /// An optimizer with the given state (as read from a checkpoint).
    pub(crate) fn from_state(config: AdamConfig, step: u64, exp_avg: Vec<Tensor>, exp_avg_sq: Vec<Tensor>) -> Self {
        Self { config, step, exp_avg, exp_avg_sq, scratch: Vec::new() }
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// First moments, one per parameter.
    pub fn exp_avg(&self) -> &[Tensor] {
        &self.exp_avg
    }

    /// Second moments, one per parameter.
    pub fn exp_avg_sq(&self) -> &[Tensor] {
        &self.exp_avg_sq
    }

    /// Clears the gradients of `parameters`.
    pub fn zero_grad(parameters: &[&Tensor]) -> Result<(), ModelError> {
        for parameter in parameters {
            let mut grad = parameter.grad();
            if grad.defined() {
                let _ = grad
                    .f_detach_()
                    .and_then(|mut grad| grad.f_zero_())
                    .map_err(ModelError::libtorch("clearing gradients"))?;
            }
        }
        Ok(())
    }

    /// One update of every parameter from its gradient (parameters without a
    /// gradient, like the seed network's unused conv1, are left alone, and so
    /// are their moments, as in PyTorch).
    pub fn step(&mut self, parameters: &[&Tensor]) -> Result<(), ModelError> {
        if parameters.len() != self.exp_avg.len() {
            return Err(ModelError::ParameterCount { expected: self.exp_avg.len(), found: parameters.len() });
        }
        if let (Some(parameter), Some(moment)) = (parameters.first(), self.exp_avg.first())
            && parameter.device() != moment.device()
        {
            return Err(ModelError::Device {
                what: "the optimizer's moments",
                expected: parameter.device(),
                found: moment.device(),
            });
        }
        self.step += 1;
        let AdamConfig { learning_rate, beta1, beta2, epsilon } = self.config;
        let step = self.step as i32;
        let bias_correction1 = 1.0 - beta1.powi(step);
        let bias_correction2 = 1.0 - beta2.powi(step);
        let step_size = learning_rate / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.sqrt();
        if self.scratch.len() != self.exp_avg.len() {
            self.scratch = self
                .exp_avg
                .iter()
                .map(Tensor::f_empty_like)
                .collect::<Result<_, _>>()
                .map_err(ModelError::libtorch("allocating the optimizer's scratch space"))?;
        }
        let updated = tch::no_grad(|| -> Result<(), tch::TchError> {
            let moments = self.exp_avg.iter_mut().zip(&mut self.exp_avg_sq).zip(&mut self.scratch);
            for (parameter, ((exp_avg, exp_avg_sq), scratch)) in parameters.iter().zip(moments) {
                let grad = parameter.grad();
                if !grad.defined() {
                    continue;
                }
                // exp_avg.lerp_(grad, 1 - beta1)
                let _ = exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                let _ = exp_avg_sq.f_mul_scalar_(beta2)?;
                let _ = grad.f_mul_scalar_out(scratch, 1.0 - beta2)?;
                let _ = exp_avg_sq.f_addcmul_(&grad, scratch)?;
                // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                let _ = exp_avg_sq.f_sqrt_out(scratch)?;
                let _ = scratch.f_div_scalar_(bias_correction2_sqrt)?;
                let _ = scratch.f_add_scalar_(epsilon)?;
                // param.addcdiv_(exp_avg, denom, value=-step_size), with the
                // value folded into the divisor (tch's addcdiv_ takes none).
                let _ = scratch.f_div_scalar_(-step_size)?;
                let mut parameter = parameter.shallow_clone();
                let _ = parameter.f_addcdiv_(exp_avg, scratch)?;
            }
            Ok(())
        });
        updated.map_err(ModelError::libtorch("Adam update"))
    }
}
