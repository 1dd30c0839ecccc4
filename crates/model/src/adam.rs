//! Adam with its whole state ours to save and restore (tch's built-in
//! optimizers cannot save theirs: tch-rs #360). The update is
//! `torch.optim.Adam`'s: by default ATen's fused kernel (one pass over memory
//! for every parameter and both moments, `torch.optim.Adam(fused=True)`),
//! or the same formula as nine in-place tensor operations per parameter
//! ([`AdamKernel::Composite`]). The two agree within float rounding; what the
//! fused kernel saves is in `docs/PERFORMANCE.md`. For the bf16 step on the
//! CPU, the fused kernel also keeps bf16 shadows of the dense weights
//! (`crate::shadow`), updated in its own pass.

use tch::{Device, Tensor};

use crate::ModelError;
use crate::shadow::Bf16Shadow;

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
    /// Whether the bf16 step on the CPU computes with bf16 shadows of the
    /// dense weights that this optimizer writes (`true`, the default, with
    /// [`AdamKernel::Fused`] on a CPU with AVX2 and FMA) or casts the fp32
    /// weights every step (`false`). The same arithmetic but Adam's
    /// rounding; not part of the state.
    pub bf16_shadows: bool,
    step: u64,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// One work buffer per parameter, reused every step (not part of the state).
    scratch: Vec<Tensor>,
    /// The bf16 copies of the dense weights, made at the first bf16 step
    /// that uses them (derived from the weights: not part of the state).
    shadow: Option<Bf16Shadow>,
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
            bf16_shadows: true,
            step: 0,
            exp_avg: zeros()?,
            exp_avg_sq: zeros()?,
            scratch: Vec::new(),
            shadow: None,
        })
    }

    /// An optimizer with the given state (as read from a checkpoint).
    pub(crate) fn from_state(config: AdamConfig, step: u64, exp_avg: Vec<Tensor>, exp_avg_sq: Vec<Tensor>) -> Self {
        Self {
            config,
            kernel: AdamKernel::default(),
            bf16_shadows: true,
            step,
            exp_avg,
            exp_avg_sq,
            scratch: Vec::new(),
            shadow: None,
        }
    }

    /// Whether this optimizer keeps bf16 shadows of dense weights (made by
    /// the first bf16 training step on a CPU where they apply: see
    /// [`Adam::bf16_shadows`]).
    pub fn has_bf16_shadows(&self) -> bool {
        self.shadow.is_some()
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

    /// The bf16 copies of `parameters`' dense weights for this step's
    /// forward pass, by position (`None` where a parameter is cast as
    /// before), made at the first call and re-rounded where a weight was
    /// written other than by this optimizer; their gradients are cleared.
    /// Empty when shadows do not apply: [`Adam::bf16_shadows`] off, the
    /// composite kernel, parameters off the CPU, or a CPU without AVX2 and
    /// FMA. The bf16 training step calls it before its forward pass.
    pub(crate) fn bf16_shadow_copies(&mut self, parameters: &[&Tensor]) -> Result<Vec<Option<Tensor>>, ModelError> {
        let on_cpu = parameters.first().is_some_and(|parameter| parameter.device() == Device::Cpu);
        let applies = self.bf16_shadows
            && self.kernel == AdamKernel::Fused
            && on_cpu
            && parameters.len() == self.exp_avg.len()
            && crate::fused::bf16_shadow_supported();
        if !applies {
            return Ok(Vec::new());
        }
        let prepared = (|| {
            match &mut self.shadow {
                Some(shadow) if shadow.fits(parameters.len()) => shadow.refresh_stale(parameters)?,
                _ => self.shadow = Some(Bf16Shadow::new(parameters)?),
            }
            Ok::<_, tch::TchError>(self.shadow.as_ref().map(Bf16Shadow::copies).unwrap_or_default())
        })();
        prepared.map_err(ModelError::libtorch("preparing the bf16 copies of the weights"))
    }

    /// The update by ATen's fused kernel, for the parameters that have a
    /// gradient, and by the shadow kernel for the dense weights whose
    /// gradient arrived on their bf16 shadow.
    fn fused_update(&mut self, parameters: &[&Tensor]) -> Result<(), ModelError> {
        let (plain, shadowed) = self.gather_operands(parameters)?;
        let AdamConfig { learning_rate, beta1, beta2, epsilon } = self.config;
        let hyper = (learning_rate, beta1, beta2, epsilon);
        if let Some(first) = plain.params.first() {
            // The kernel reads the step number from a tensor on the parameters' device (float,
            // as PyTorch keeps it: exact up to 2^24 steps, and Adam's bias corrections are 1 long before).
            let step = Tensor::f_full([], self.step as f64, (tch::Kind::Float, first.device()))
                .map_err(ModelError::libtorch("Adam's step number"))?;
            tch::no_grad(|| {
                crate::fused::adam(&plain.params, &plain.grads, &plain.exp_avgs, &plain.exp_avg_sqs, &step, hyper)
            })
            .map_err(ModelError::libtorch("fused Adam update"))?;
        }
        if shadowed.operands.params.is_empty() {
            return Ok(());
        }
        crate::fused::adam_with_bf16_shadow(&shadowed.as_lists(), self.step as f64, hyper)
            .and_then(|()| crate::fused::clear_grads(&shadowed.shadows.iter().collect::<Vec<_>>()))
            .map_err(ModelError::libtorch("Adam update with bf16 shadows"))?;
        if let Some(shadow) = &mut self.shadow {
            for (&position, weight) in shadowed.positions.iter().zip(&shadowed.operands.params) {
                shadow.mark_written(position, weight);
            }
        }
        Ok(())
    }

    /// Sorts the parameters with a gradient into those updated from an fp32
    /// gradient of their own and the dense weights whose (bf16) gradient is
    /// on their shadow.
    fn gather_operands(&self, parameters: &[&Tensor]) -> Result<(Operands, ShadowedOperands), ModelError> {
        let (mut plain, mut shadowed) = (Operands::default(), ShadowedOperands::default());
        let moments = self.exp_avg.iter().zip(&self.exp_avg_sq);
        for (position, (parameter, (exp_avg, exp_avg_sq))) in parameters.iter().zip(moments).enumerate() {
            let shadow = self.shadow.as_ref().and_then(|shadow| shadow.copy(position));
            let shadow_grad = match shadow {
                Some(copy) => Some(copy.f_grad().map_err(ModelError::libtorch("reading a shadow's gradient"))?),
                None => None,
            };
            if let (Some(copy), Some(grad)) = (shadow, shadow_grad.filter(Tensor::defined)) {
                shadowed.operands.push(parameter, grad, exp_avg, exp_avg_sq);
                shadowed.shadows.push(copy.shallow_clone());
                shadowed.positions.push(position);
                continue;
            }
            let grad = parameter.f_grad().map_err(ModelError::libtorch("reading a gradient"))?;
            if grad.defined() {
                plain.push(parameter, grad, exp_avg, exp_avg_sq);
            }
        }
        Ok((plain, shadowed))
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

/// The operand lists of one fused Adam call, one entry per parameter.
#[derive(Default)]
struct Operands {
    params: Vec<Tensor>,
    grads: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
}

impl Operands {
    fn push(&mut self, parameter: &Tensor, grad: Tensor, exp_avg: &Tensor, exp_avg_sq: &Tensor) {
        self.params.push(parameter.shallow_clone());
        self.grads.push(grad);
        self.exp_avgs.push(exp_avg.shallow_clone());
        self.exp_avg_sqs.push(exp_avg_sq.shallow_clone());
    }
}

/// The shadow kernel's operands: [`Operands`], each weight's bf16 shadow,
/// and each weight's position in the parameter list.
#[derive(Default)]
struct ShadowedOperands {
    operands: Operands,
    shadows: Vec<Tensor>,
    positions: Vec<usize>,
}

impl ShadowedOperands {
    fn as_lists(&self) -> crate::fused::ShadowedAdamOperands<'_> {
        crate::fused::ShadowedAdamOperands {
            params: &self.operands.params,
            grads: &self.operands.grads,
            exp_avgs: &self.operands.exp_avgs,
            exp_avg_sqs: &self.operands.exp_avg_sqs,
            shadows: &self.shadows,
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::*;

    fn relative_gap(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
    }

    /// Five updates of one 2-d weight: through its bf16 shadow, and through
    /// ATen's fused Adam from the same gradients widened to fp32.
    #[test]
    fn the_shadow_kernel_is_atens_fused_adam_and_keeps_the_weights_rounded_copy() {
        let start = Tensor::randn([64, 300], (Kind::Float, Device::Cpu)) * 0.1;
        let shadowed = start.copy().set_requires_grad(true);
        let reference = start.copy().set_requires_grad(true);
        let mut with_shadow = Adam::new(&[&shadowed], AdamConfig::default()).unwrap();
        let mut without = Adam::new(&[&reference], AdamConfig::default()).unwrap();
        for _ in 0..5 {
            let upstream = Tensor::randn([64, 300], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
            let copies = with_shadow.bf16_shadow_copies(&[&shadowed]).unwrap();
            let copy = copies[0].as_ref().expect("a 2-d fp32 weight on the CPU gets a shadow");
            assert!(copy.equal(&shadowed.detach().to_kind(Kind::BFloat16)), "the copy is the weight rounded");
            (copy * &upstream).sum(Kind::Float).backward();
            with_shadow.step(&[&shadowed]).unwrap();
            assert!(!shadowed.grad().defined(), "the weight's own gradient stays unused");
            (reference.to_kind(Kind::BFloat16) * &upstream).sum(Kind::Float).backward();
            without.step(&[&reference]).unwrap();
            Adam::zero_grad(&[&reference]).unwrap();
        }
        assert!(with_shadow.has_bf16_shadows() && !without.has_bf16_shadows());
        let gap = relative_gap(&shadowed, &reference);
        assert!(gap < 1e-6, "weights differ by {gap} of their largest value");
        for (ours, theirs) in with_shadow
            .exp_avg
            .iter()
            .zip(&without.exp_avg)
            .chain(with_shadow.exp_avg_sq.iter().zip(&without.exp_avg_sq))
        {
            let gap = relative_gap(ours, theirs);
            assert!(gap < 1e-6, "moments differ by {gap} of their largest value");
        }
        // The kernel's last write is the updated weight rounded, bit for bit.
        let copy = with_shadow.shadow.as_ref().unwrap().copy(0).unwrap();
        assert!(copy.equal(&shadowed.detach().to_kind(Kind::BFloat16)));
        assert!(!copy.grad().defined(), "the consumed gradient is cleared");
    }

    #[test]
    fn a_weight_written_elsewhere_gets_its_copy_rounded_again() {
        let weight = (Tensor::randn([16, 16], (Kind::Float, Device::Cpu)) * 0.1).set_requires_grad(true);
        let vector = Tensor::randn([16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut adam = Adam::new(&[&weight, &vector], AdamConfig::default()).unwrap();
        let copies = adam.bf16_shadow_copies(&[&weight, &vector]).unwrap();
        assert!(copies[0].is_some() && copies[1].is_none(), "only 2-d weights get a shadow");
        let _ = tch::no_grad(|| weight.shallow_clone().f_mul_scalar_(0.5).unwrap());
        let copies = adam.bf16_shadow_copies(&[&weight, &vector]).unwrap();
        assert!(copies[0].as_ref().unwrap().equal(&weight.detach().to_kind(Kind::BFloat16)));
        // Off, or with the composite kernel, the bf16 step casts as before.
        adam.bf16_shadows = false;
        assert!(adam.bf16_shadow_copies(&[&weight, &vector]).unwrap().is_empty());
        adam.bf16_shadows = true;
        adam.kernel = AdamKernel::Composite;
        assert!(adam.bf16_shadow_copies(&[&weight, &vector]).unwrap().is_empty());
    }
}
