//! The crate's only foreign calls, three libtorch functions tch does not
//! bind: ATen's fused Adam update (`at::_fused_adam_`, what
//! `torch.optim.Adam(fused=True)` runs), which updates every parameter and
//! both moments in one pass over memory where the same update written as
//! tensor operations takes nine; clearing gradients to none
//! (`zero_grad(set_to_none=True)`), which spares a pass that writes zeros
//! and one that adds the next gradients to them; and leaky ReLU with a slope
//! of our choosing (tch's is fixed at 0.01). `csrc/aten_shim.cpp` wraps them
//! so that no C++ exception crosses into Rust; `build.rs` compiles it
//! against the project's libtorch. Failures come back as tch's own error
//! type, so callers treat them like any other libtorch error.

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
    fn model_clear_grads(params: *const *const C_tensor, count: usize, error: *mut c_char, error_len: usize) -> c_int;
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
