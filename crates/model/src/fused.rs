//! The crate's only foreign calls: libtorch functions tch does not bind,
//! and code of our own written against ATen.
//!
//! - ATen's fused Adam update (`at::_fused_adam_`, what
//!   `torch.optim.Adam(fused=True)` runs), which updates every parameter and
//!   both moments in one pass over memory where the same update written as
//!   tensor operations takes nine.
//! - Clearing gradients to none (`zero_grad(set_to_none=True)`), which
//!   spares a pass that writes zeros and one that adds the next gradients
//!   to them.
//! - Leaky ReLU with a slope of our choosing (tch's is fixed at 0.01).
//! - A dense layer whose fp32 matrix products run on oneDNN instead of MKL,
//!   whose sgemm is about half as fast on fc4's shapes inside a step (where
//!   oneDNN takes fp32 products: not on CPUs with AVX2 but no AVX-512).
//! - Opt-in, a convolution's batch norm, pooling and leaky ReLU as one node
//!   (`csrc/bn_pool_lrelu.cpp`).
//! - Adam over fp32 weights from bf16 gradients that writes the weights'
//!   bf16 copies in the same pass (`csrc/adam_bf16_shadow.cpp`), with a
//!   tensor's version counter to tell when such a copy is stale.
//! - One C library call, glibc's `mallopt`, for `crate::allocator`.
//!
//! `csrc/aten_shim.cpp` wraps them so that no C++ exception crosses into
//! Rust; `build.rs` compiles the shim and the two kernel files against the
//! project's libtorch. Failures come back as tch's own error type, so
//! callers treat them like any other libtorch error.

use std::ffi::{CStr, c_char, c_int};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn model_fused_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        count: usize,
        step: *const C_tensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn model_leaky_relu(
        x: *const C_tensor,
        slope: f64,
        result: *mut *mut C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn model_pin_malloc_thresholds(mmap_threshold: usize, trim_threshold: usize) -> c_int;
    fn model_clear_grads(params: *const *const C_tensor, count: usize, error: *mut c_char, error_len: usize) -> c_int;
    fn model_dense_layer(
        x: *const C_tensor,
        weight: *const C_tensor,
        result: *mut *mut C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn model_adam_bf16_shadow(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        shadows: *const *const C_tensor,
        count: usize,
        step: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn model_bf16_shadow_supported() -> c_int;
    fn model_tensor_version(t: *const C_tensor) -> i64;
    fn model_bn_pool_lrelu(
        x: *const C_tensor,
        beta: *const C_tensor,
        running_mean: *const C_tensor,
        running_var: *const C_tensor,
        momentum: f64,
        eps: f64,
        slope: f64,
        pool: c_int,
        use_fused: c_int,
        result: *mut *mut C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// Batch norm's tensors and constants for [`bn_pool_lrelu`].
pub(crate) struct BatchNormArgs<'a> {
    pub(crate) beta: &'a Tensor,
    pub(crate) running_mean: &'a Tensor,
    pub(crate) running_var: &'a Tensor,
    pub(crate) momentum: f64,
    pub(crate) eps: f64,
}

/// Batch norm in training mode (a shift, no scale; the moving averages
/// updated in place), then 2x2 max pooling if `pool`, then leaky ReLU with
/// `slope`, recorded by autograd. With `fused`, on an AVX2 CPU for a
/// channels-last fp32 or bf16 input, one node with hand-written passes
/// (`csrc/bn_pool_lrelu.cpp`); otherwise, and without `fused` (the
/// default), ATen's three calls.
pub(crate) fn bn_pool_lrelu(
    x: &Tensor,
    batch_norm: &BatchNormArgs<'_>,
    slope: f64,
    pool: bool,
    fused: bool,
) -> Result<Tensor, TchError> {
    let mut result: *mut C_tensor = std::ptr::null_mut();
    let mut error = [0u8; 512];
    // SAFETY: the four tensors are live for the whole call; `result` is a
    // writable pointer slot, filled only on success; `error` is writable for
    // the length passed; the C++ side checks the shapes, kinds and devices
    // itself (falling back to ATen's calls) and catches every exception.
    let status = unsafe {
        model_bn_pool_lrelu(
            x.as_ptr(),
            batch_norm.beta.as_ptr(),
            batch_norm.running_mean.as_ptr(),
            batch_norm.running_var.as_ptr(),
            batch_norm.momentum,
            batch_norm.eps,
            slope,
            c_int::from(pool),
            c_int::from(fused),
            &mut result,
            error.as_mut_ptr().cast::<c_char>(),
            error.len(),
        )
    };
    status_to_result(status, &error)?;
    // SAFETY: on success `result` is a tensor the C++ side allocated with
    // `new`, handed over as tch's own results are: the `Tensor` owns it.
    Ok(unsafe { Tensor::from_ptr(result) })
}

/// What pinning glibc malloc's thresholds did ([`pin_malloc_thresholds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinOutcome {
    /// Both thresholds are set.
    Pinned,
    /// glibc refused a value.
    Refused,
    /// The C library is not glibc.
    NotGlibc,
}

/// Sets glibc malloc's mmap threshold and trim threshold (`mallopt`), which
/// also turns off its dynamic adjustment of the first.
pub(crate) fn pin_malloc_thresholds(mmap_threshold: usize, trim_threshold: usize) -> PinOutcome {
    // SAFETY: plain integers in, an integer out; `mallopt` is safe to call
    // at any time, from any thread.
    match unsafe { model_pin_malloc_thresholds(mmap_threshold, trim_threshold) } {
        0 => PinOutcome::Pinned,
        2 => PinOutcome::NotGlibc,
        _ => PinOutcome::Refused,
    }
}

/// Leaves every tensor of `params` without a gradient (undefined, as
/// PyTorch's `None`): the next backward pass stores its gradients instead of
/// adding them to zeros.
pub(crate) fn clear_grads(params: &[&Tensor]) -> Result<(), TchError> {
    let handles: Vec<*const C_tensor> = params.iter().map(|tensor| tensor.as_ptr()).collect();
    let mut error = [0u8; 512];
    // SAFETY: `handles` holds `params.len()` handles of live `Tensor`s borrowed
    // for the whole call (tch's `C_tensor` is the `torch::Tensor*` the C++ side
    // reads); `error` is writable for the length passed; the C++ side catches
    // every exception.
    let status =
        unsafe { model_clear_grads(handles.as_ptr(), handles.len(), error.as_mut_ptr().cast::<c_char>(), error.len()) };
    status_to_result(status, &error)
}

/// Leaky ReLU with `slope` for negative inputs, as one libtorch kernel
/// (autograd records it; its backward is one kernel too).
/// `x [N, in] @ weight [out, in]^T` (a dense layer without bias), recorded
/// by autograd; for fp32 on the CPU with gradients enabled (training) its
/// three matrix products run on oneDNN instead of MKL (`csrc/aten_shim.cpp`
/// says why), otherwise (evaluation, tracing, bf16, CUDA, and CPUs where
/// PyTorch's oneDNN matmul refuses fp32: AVX2 without AVX-512) on `at::mm`.
pub(crate) fn dense_layer(x: &Tensor, weight: &Tensor) -> Result<Tensor, TchError> {
    let mut result: *mut C_tensor = std::ptr::null_mut();
    let mut error = [0u8; 512];
    // SAFETY: `x` and `weight` are live tensors for the whole call; `result`
    // is a writable pointer slot, filled only on success; `error` is writable
    // for the length passed; the C++ side checks the shapes, kinds and
    // devices itself and catches every exception.
    let status = unsafe {
        model_dense_layer(x.as_ptr(), weight.as_ptr(), &mut result, error.as_mut_ptr().cast::<c_char>(), error.len())
    };
    status_to_result(status, &error)?;
    // SAFETY: on success `result` is a tensor the C++ side allocated with
    // `new`, handed over as tch's own results are: the `Tensor` owns it.
    Ok(unsafe { Tensor::from_ptr(result) })
}

pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor, TchError> {
    let mut result: *mut C_tensor = std::ptr::null_mut();
    let mut error = [0u8; 512];
    // SAFETY: `x` is a live tensor for the whole call; `result` is a writable
    // pointer slot, which the C++ side fills only on success; `error` is
    // writable for the length passed; the C++ side catches every exception.
    let status =
        unsafe { model_leaky_relu(x.as_ptr(), slope, &mut result, error.as_mut_ptr().cast::<c_char>(), error.len()) };
    status_to_result(status, &error)?;
    // SAFETY: on success `result` is a tensor the C++ side allocated with `new`,
    // which is how tch's own C API hands over results: the `Tensor` takes
    // ownership and frees it (with `delete`) when dropped.
    Ok(unsafe { Tensor::from_ptr(result) })
}

/// `Ok` for status 0, otherwise the message the C++ side left in `error`.
fn status_to_result(status: c_int, error: &[u8]) -> Result<(), TchError> {
    if status == 0 {
        return Ok(());
    }
    // snprintf terminates the message within the buffer; it was zeroed besides.
    let message = CStr::from_bytes_until_nul(error).map(|text| text.to_string_lossy().into_owned());
    Err(TchError::Torch(message.unwrap_or_else(|_| "libtorch failed without a message".to_owned())))
}

/// One Adam update of the tensors of `params` from `grads`, in place, with
/// the moments `exp_avgs` and `exp_avg_sqs`; `step` (a float scalar on the
/// parameters' device) is the step number, already counted for this update.
/// The four lists have one entry per parameter, on one device, of one shape
/// each; libtorch checks that and reports a mismatch as an error.
pub(crate) fn adam(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    step: &Tensor,
    (lr, beta1, beta2, eps): (f64, f64, f64, f64),
) -> Result<(), TchError> {
    let count = params.len();
    // The C++ side reads `count` handles from each list: unequal lengths must never reach it.
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len()] != [count; 3] {
        return Err(TchError::Torch(format!(
            "fused Adam needs one gradient and two moments per parameter: {count} parameters, {} gradients, \
             {} and {} moments",
            grads.len(),
            exp_avgs.len(),
            exp_avg_sqs.len()
        )));
    }
    let handles = |tensors: &[Tensor]| tensors.iter().map(Tensor::as_ptr).collect::<Vec<_>>();
    let (params, grads, exp_avgs, exp_avg_sqs) =
        (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs));
    let mut error = [0u8; 512];
    // SAFETY: each pointer array holds `count` handles of live `Tensor`s
    // borrowed for the whole call (tch's `C_tensor` is a `torch::Tensor*`, the
    // type the C++ side reads), `step` is a live tensor, and `error` is a
    // writable buffer of the length passed, which the C++ side fills with a
    // NUL-terminated message (snprintf) only on failure. The C++ side catches
    // every exception, so none unwinds into Rust.
    let status = unsafe {
        model_fused_adam(
            params.as_ptr(),
            grads.as_ptr(),
            exp_avgs.as_ptr(),
            exp_avg_sqs.as_ptr(),
            count,
            step.as_ptr(),
            lr,
            beta1,
            beta2,
            eps,
            error.as_mut_ptr().cast::<c_char>(),
            error.len(),
        )
    };
    status_to_result(status, &error)
}

/// The five operand lists of [`adam_with_bf16_shadow`], one entry per weight each.
pub(crate) struct ShadowedAdamOperands<'a> {
    pub(crate) params: &'a [Tensor],
    pub(crate) grads: &'a [Tensor],
    pub(crate) exp_avgs: &'a [Tensor],
    pub(crate) exp_avg_sqs: &'a [Tensor],
    pub(crate) shadows: &'a [Tensor],
}

/// One Adam update of fp32 weights from bf16 gradients that also writes each
/// weight's bf16 shadow, rounded as a cast would (`csrc/adam_bf16_shadow.cpp`);
/// `step` is the step number, already counted. Every operand must be a
/// contiguous CPU tensor of its weight's shape (checked by the C++ side),
/// and the CPU must have AVX2 and FMA ([`bf16_shadow_supported`]).
pub(crate) fn adam_with_bf16_shadow(
    operands: &ShadowedAdamOperands<'_>,
    step: f64,
    (lr, beta1, beta2, eps): (f64, f64, f64, f64),
) -> Result<(), TchError> {
    let ShadowedAdamOperands { params, grads, exp_avgs, exp_avg_sqs, shadows } = operands;
    let count = params.len();
    // The C++ side reads `count` handles from each list: unequal lengths must never reach it.
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), shadows.len()] != [count; 4] {
        return Err(TchError::Torch(format!(
            "Adam with a bf16 shadow needs a gradient, two moments and a shadow per weight: {count} weights, \
             {} gradients, {} and {} moments, {} shadows",
            grads.len(),
            exp_avgs.len(),
            exp_avg_sqs.len(),
            shadows.len()
        )));
    }
    let handles = |tensors: &[Tensor]| tensors.iter().map(Tensor::as_ptr).collect::<Vec<_>>();
    let lists = [handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs), handles(shadows)];
    let mut error = [0u8; 512];
    // SAFETY: each pointer array holds `count` handles of live `Tensor`s
    // borrowed for the whole call; `error` is writable for the length
    // passed; the C++ side checks kinds, shapes, layout and the CPU, and
    // catches every exception.
    let status = unsafe {
        model_adam_bf16_shadow(
            lists[0].as_ptr(),
            lists[1].as_ptr(),
            lists[2].as_ptr(),
            lists[3].as_ptr(),
            lists[4].as_ptr(),
            count,
            step,
            lr,
            beta1,
            beta2,
            eps,
            error.as_mut_ptr().cast::<c_char>(),
            error.len(),
        )
    };
    status_to_result(status, &error)
}

/// Whether this CPU can run [`adam_with_bf16_shadow`] (AVX2 and FMA).
pub(crate) fn bf16_shadow_supported() -> bool {
    // SAFETY: no arguments; the C++ side only reads the CPU's features.
    unsafe { model_bf16_shadow_supported() == 1 }
}

/// The tensor's version counter: every in-place write through libtorch
/// advances it, so a changed version means the tensor was written.
pub(crate) fn tensor_version(tensor: &Tensor) -> i64 {
    // SAFETY: `tensor` is a live tensor for the whole call; the C++ side only reads its counter.
    unsafe { model_tensor_version(tensor.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::dense_layer;

    /// The dense layer's output and both gradients, and `linear`'s.
    fn both_ways(kind: Kind) -> [(Tensor, Tensor); 3] {
        let x = Tensor::randn([50, 3136], (kind, Device::Cpu));
        let weight = Tensor::randn([1024, 3136], (kind, Device::Cpu)) * 0.02;
        let upstream = Tensor::randn([50, 1024], (kind, Device::Cpu));
        let run = |forward: &dyn Fn(&Tensor, &Tensor) -> Tensor| {
            let (x, weight) = (x.copy().set_requires_grad(true), weight.copy().set_requires_grad(true));
            let y = forward(&x, &weight);
            (&y * &upstream).sum(Kind::Float).backward();
            (y.detach(), x.grad().copy(), weight.grad().copy())
        };
        let (y, grad_x, grad_weight) = run(&|x, weight| dense_layer(x, weight).unwrap());
        let (y_ref, grad_x_ref, grad_weight_ref) = run(&|x, weight| x.linear::<Tensor>(weight, None));
        [(y, y_ref), (grad_x, grad_x_ref), (grad_weight, grad_weight_ref)]
    }

    fn relative_difference(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]);
        (a - b).abs().max().double_value(&[]) / scale
    }

    #[test]
    fn the_dense_layer_is_linear_without_bias_values_and_gradients() {
        for (kind, bound) in [(Kind::Float, 1e-5), (Kind::BFloat16, 2e-2)] {
            for ((ours, reference), what) in both_ways(kind).iter().zip(["output", "input gradient", "weight gradient"])
            {
                assert_eq!(ours.kind(), kind, "{what}");
                assert_eq!(ours.size(), reference.size(), "{what}");
                let difference = relative_difference(ours, reference);
                assert!(difference < bound, "{kind:?} {what}: relative difference {difference}");
            }
        }
        // No gradient is computed for an input that needs none, and evaluation records nothing.
        let x = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let weight = Tensor::randn([3, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = tch::no_grad(|| dense_layer(&x, &weight).unwrap());
        assert!(!y.requires_grad());
        dense_layer(&x, &weight).unwrap().sum(Kind::Float).backward();
        assert!(weight.grad().defined() && !x.grad().defined());
    }

    #[test]
    fn a_traced_dense_layer_records_its_product() {
        // `trainer export` traces the network: oneDNN's matmul is invisible to
        // the tracer, so the layer must take `at::mm` while tracing.
        let weight = Tensor::randn([16, 32], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([5, 32], (Kind::Float, Device::Cpu));
        let module = tch::CModule::create_by_tracing("Dense", "forward", &[x.copy()], &mut |inputs| {
            vec![dense_layer(&inputs[0], &weight).unwrap()]
        })
        .unwrap();
        let other = Tensor::randn([7, 32], (Kind::Float, Device::Cpu));
        let traced = module.forward_ts(&[&other]).unwrap();
        let difference = relative_difference(&traced, &other.linear::<Tensor>(&weight, None));
        assert!(difference < 1e-5, "the traced layer computes something else: relative difference {difference}");
    }

    #[test]
    fn a_dense_layer_that_does_not_fit_is_an_error_not_a_crash() {
        let x = Tensor::zeros([4, 8], (Kind::Float, Device::Cpu));
        let message = dense_layer(&x, &Tensor::zeros([3, 9], (Kind::Float, Device::Cpu))).unwrap_err().to_string();
        assert!(message.contains("dense layer: input [4, 8] does not fit weight [3, 9]"), "{message}");
        let message = dense_layer(&x, &Tensor::zeros([3, 8], (Kind::Double, Device::Cpu))).unwrap_err().to_string();
        assert!(message.contains("differ in kind or device"), "{message}");
    }
}
