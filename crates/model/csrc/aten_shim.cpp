// The three libtorch calls the model crate needs that tch does not bind:
// Adam's whole-model update in one pass over memory (`at::_fused_adam_`, the
// kernel behind `torch.optim.Adam(fused=True)`, on the CPU and on CUDA),
// clearing gradients to "none" (`optimizer.zero_grad(set_to_none=True)`),
// and leaky ReLU with a slope of our choosing (tch's has 0.01 built in).
//
// Tensors arrive as tch's handles (`torch::Tensor*`, tch's `C_tensor`). No
// C++ exception crosses into Rust: a failure is written into `error` and
// reported by a nonzero return.

#include <ATen/ATen.h>

#include <cstdio>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> gather(at::Tensor *const *tensors, size_t count) {
    std::vector<at::Tensor> list;
    list.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        list.push_back(*tensors[i]);
    }
    return list;
}

}  // namespace

extern "C" int model_fused_adam(at::Tensor *const *params, at::Tensor *const *grads,
                                at::Tensor *const *exp_avgs, at::Tensor *const *exp_avg_sqs,
                                size_t count, const at::Tensor *step, double lr, double beta1,
                                double beta2, double eps, char *error, size_t error_len) {
    try {
        std::vector<at::Tensor> steps(count, *step);
        at::_fused_adam_(gather(params, count), gather(grads, count), gather(exp_avgs, count),
                         gather(exp_avg_sqs, count), /*max_exp_avg_sqs=*/{}, steps, lr, beta1,
                         beta2, /*weight_decay=*/0.0, eps, /*amsgrad=*/false,
                         /*maximize=*/false);
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}

// Leaves every parameter without a gradient, so that the next backward pass
// hands over its freshly computed gradients instead of adding them to zeros.
extern "C" int model_clear_grads(at::Tensor *const *params, size_t count, char *error,
                                 size_t error_len) {
    try {
        for (size_t i = 0; i < count; ++i) {
            params[i]->mutable_grad().reset();
        }
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}

// `at::leaky_relu(x, slope)`, recorded by autograd like any ATen call: one
// kernel forward and one backward. The result is handed over as tch hands
// over its own: a `new` tensor that the Rust side owns and frees.
extern "C" int model_leaky_relu(const at::Tensor *x, double slope, at::Tensor **result,
                                char *error, size_t error_len) {
    try {
        *result = new at::Tensor(at::leaky_relu(*x, slope));
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}
