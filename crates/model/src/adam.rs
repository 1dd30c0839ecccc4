//! Adam with its whole state ours to save and restore (tch's built-in
//! optimizers cannot save theirs: tch-rs #360). The update is
//! `torch.optim.Adam`'s: by default ATen's fused kernel (one pass over memory
//! for every parameter and both moments, `torch.optim.Adam(fused=True)`),
//! or the same formula as nine in-place tensor operations per parameter
//! ([`AdamKernel::Composite`]). The two agree within float rounding; what the
//! fused kernel saves is in `docs/PERFORMANCE.md`.

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

/// How the update is computed: the same formula either way, rounded differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdamKernel {
    /// ATen's fused Adam: one pass over memory for the whole model.
    #[default]
    Fused,
    /// Nine in-place tensor operations per parameter (PyTorch's single-tensor Adam).
    Composite,
}

/// The optimizer and its state: the step count and both moments of every parameter.
#[derive(Debug)]
pub struct Adam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    /// How updates are computed (not part of the state: a checkpoint resumes with either).
    pub kernel: AdamKernel,
    step: u64,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// One work buffer per parameter, reused every step (not part of the state).
    scratch: Vec<Tensor>,
}

impl Adam {
    /// A fresh optimizer for `parameters` (zero moments, step 0).
    ///
    /// # Errors
    /// [`ModelError::Libtorch`] when the device cannot hold the moments.
    pub fn new(parameters: &[&Tensor], config: AdamConfig) -> Result<Self, ModelError> {
        let zeros = || {
            parameters
                .iter()
                .map(|parameter| parameter.f_zeros_like())
                .collect::<Result<Vec<_>, _>>()
                .map_err(ModelError::libtorch("allocating the optimizer's moments"))
        };
        Ok(Self {
            config,
            kernel: AdamKernel::default(),
            step: 0,
            exp_avg: zeros()?,
            exp_avg_sq: zeros()?,
            scratch: Vec::new(),
        })
    }

    /// An optimizer with the given state (as read from a checkpoint).
    pub(crate) fn from_state(config: AdamConfig, step: u64, exp_avg: Vec<Tensor>, exp_avg_sq: Vec<Tensor>) -> Self {
        Self { config, kernel: AdamKernel::default(), step, exp_avg, exp_avg_sq, scratch: Vec::new() }
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

    /// Clears the gradients of `parameters` to none (undefined, PyTorch's
    /// `zero_grad(set_to_none=True)`): the next backward pass stores fresh
    /// gradients instead of adding them to zeros.
    pub fn zero_grad(parameters: &[&Tensor]) -> Result<(), ModelError> {
        crate::fused::clear_grads(parameters).map_err(ModelError::libtorch("clearing gradients"))
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
        match self.kernel {
            AdamKernel::Fused => self.fused_update(parameters),
            AdamKernel::Composite => self.composite_update(parameters),
        }
    }

    /// The update by ATen's fused kernel, for the parameters that have a gradient.
    fn fused_update(&mut self, parameters: &[&Tensor]) -> Result<(), ModelError> {
        let (mut params, mut grads, mut exp_avgs, mut exp_avg_sqs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((parameter, exp_avg), exp_avg_sq) in parameters.iter().zip(&self.exp_avg).zip(&self.exp_avg_sq) {
            let grad = parameter.f_grad().map_err(ModelError::libtorch("reading a gradient"))?;
            if grad.defined() {
                params.push(parameter.shallow_clone());
                grads.push(grad);
                exp_avgs.push(exp_avg.shallow_clone());
                exp_avg_sqs.push(exp_avg_sq.shallow_clone());
            }
        }
        let Some(first) = params.first() else {
            return Ok(());
        };
        // The kernel reads the step number from a tensor on the parameters' device (float,
        // as PyTorch keeps it: exact up to 2^24 steps, and Adam's bias corrections are 1 long before).
        let step = Tensor::f_full([], self.step as f64, (tch::Kind::Float, first.device()))
            .map_err(ModelError::libtorch("Adam's step number"))?;
        let AdamConfig { learning_rate, beta1, beta2, epsilon } = self.config;
        tch::no_grad(|| {
            crate::fused::adam(&params, &grads, &exp_avgs, &exp_avg_sqs, &step, (learning_rate, beta1, beta2, epsilon))
        })
        .map_err(ModelError::libtorch("fused Adam update"))
    }

    /// The update as in-place tensor operations, with one scratch buffer per
    /// parameter, so that a step allocates nothing.
    fn composite_update(&mut self, parameters: &[&Tensor]) -> Result<(), ModelError> {
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
                let grad = parameter.f_grad()?;
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
