//! bf16 shadows of fp32 weights, for the bf16 training step on the CPU.
//!
//! The bf16 step computes with bf16 copies of the fp32 weights. Cast in the
//! forward pass, every step pays a pass that writes the copy and, in the
//! backward pass, one that widens the copy's gradient back to fp32; for the
//! dense layers (fc4 alone holds 3.2 million of the intended network's 3.3
//! million weights) those passes cost as much memory traffic as Adam's
//! own. Here the optimizer keeps each dense weight's bf16 copy as a leaf
//! tensor of its own: the forward pass computes with it as it is, its
//! gradient stays bf16, and Adam's pass (`csrc/adam_bf16_shadow.cpp`) reads
//! that gradient and writes the next copy while it updates the weight.
//!
//! Invariant: a shadow is the fp32 weight rounded to bf16, bit for bit, as
//! `to_kind(BFloat16)` rounds it, whenever the forward pass reads it. The
//! optimizer's pass keeps it so; any other write to the weight (a test, a
//! user's code, a composite Adam step) advances the weight's version
//! counter, and [`Bf16Shadow::refresh_stale`] re-rounds that weight before
//! the next forward pass. A shadow is derived state: checkpoints do not
//! hold it, and a resumed run rounds it afresh from the restored weights,
//! which gives the same bits.

use tch::{Device, Kind, TchError, Tensor};

use crate::fused::tensor_version;

/// One weight's bf16 copy and the weight's version when the copy was written.
#[derive(Debug)]
struct Shadow {
    copy: Tensor,
    version: i64,
}

impl Shadow {
    fn of(weight: &Tensor) -> Result<Self, TchError> {
        let copy = tch::no_grad(|| weight.f_detach()?.f_to_kind(Kind::BFloat16))?.f_set_requires_grad(true)?;
        Ok(Self { copy, version: tensor_version(weight) })
    }
}

/// The bf16 copies of a parameter list's dense weights, by position in the
/// list (`None` for the parameters that keep being cast: convolution
/// weights, whose forward pass reorders them to channels-last, and vectors).
#[derive(Debug)]
pub(crate) struct Bf16Shadow {
    shadows: Vec<Option<Shadow>>,
}

impl Bf16Shadow {
    /// Shadows for the 2-d fp32 contiguous CPU tensors of `parameters`.
    pub(crate) fn new(parameters: &[&Tensor]) -> Result<Self, TchError> {
        let shadows = parameters
            .iter()
            .map(|weight| if takes_a_shadow(weight) { Shadow::of(weight).map(Some) } else { Ok(None) })
            .collect::<Result<_, _>>()?;
        Ok(Self { shadows })
    }

    /// Whether the list this was made for had `count` parameters.
    pub(crate) fn fits(&self, count: usize) -> bool {
        self.shadows.len() == count
    }

    /// Re-rounds every shadow whose weight was written since its copy was,
    /// and clears every copy's gradient (a step that failed after its
    /// backward pass must not leave one to be added to).
    pub(crate) fn refresh_stale(&mut self, parameters: &[&Tensor]) -> Result<(), TchError> {
        for (shadow, weight) in self.shadows.iter_mut().zip(parameters) {
            let Some(shadow) = shadow else { continue };
            let version = tensor_version(weight);
            if version != shadow.version {
                tch::no_grad(|| shadow.copy.f_copy_(weight))?;
                shadow.version = version;
            }
        }
        let copies: Vec<&Tensor> =
            self.shadows.iter().filter_map(|shadow| shadow.as_ref().map(|shadow| &shadow.copy)).collect();
        crate::fused::clear_grads(&copies)
    }

    /// The copies, by parameter position, for a forward pass.
    pub(crate) fn copies(&self) -> Vec<Option<Tensor>> {
        self.shadows.iter().map(|shadow| shadow.as_ref().map(|shadow| shadow.copy.shallow_clone())).collect()
    }

    /// The copy of the parameter at `position`, if it has one.
    pub(crate) fn copy(&self, position: usize) -> Option<&Tensor> {
        self.shadows.get(position)?.as_ref().map(|shadow| &shadow.copy)
    }

    /// Records that the optimizer's pass wrote the copy at `position` from
    /// `weight` as it stands now.
    pub(crate) fn mark_written(&mut self, position: usize, weight: &Tensor) {
        if let Some(Some(shadow)) = self.shadows.get_mut(position) {
            shadow.version = tensor_version(weight);
        }
    }
}

/// A dense weight the shadow kernel can take: 2-d, fp32, contiguous, on the CPU.
fn takes_a_shadow(weight: &Tensor) -> bool {
    weight.dim() == 2 && weight.kind() == Kind::Float && weight.device() == Device::Cpu && weight.is_contiguous()
}
