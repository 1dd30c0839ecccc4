// The libtorch calls the model crate needs that tch does not bind:
// Adam's whole-model update in one pass over memory (`at::_fused_adam_`, the
// kernel behind `torch.optim.Adam(fused=True)`, on the CPU and on CUDA),
// clearing gradients to "none" (`optimizer.zero_grad(set_to_none=True)`),
// leaky ReLU with a slope of our choosing (tch's has 0.01 built in), and a
// dense layer whose fp32 products run on oneDNN rather than MKL (the end of
// this file).
//
// Tensors arrive as tch's handles (`torch::Tensor*`, tch's `C_tensor`). No
// C++ exception crosses into Rust: a failure is written into `error` and
// reported by a nonzero return.

#include <ATen/ATen.h>

#include <climits>
#include <cstdio>
#include <exception>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
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

// Pins glibc malloc's two thresholds (`allocator.rs` says why): blocks up to
// `mmap_threshold` bytes come from the heap instead of mappings of their own,
// and the heap returns free memory at its top to the system only beyond
// `trim_threshold` bytes. Returns 0 when both were set, 1 when glibc refused
// one, 2 where the C library is not glibc (nothing to pin).
extern "C" int model_pin_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold) {
#if defined(__GLIBC__)
    if (mmap_threshold > INT_MAX || trim_threshold > INT_MAX) {
        return 1;
    }
    const bool mmap_set = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1;
    const bool trim_set = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) == 1;
    return mmap_set && trim_set ? 0 : 1;
#else
    return 2;
#endif
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

// A dense layer without bias, y = x W^T, whose three matrix products (the
// forward one and both gradients) run on oneDNN for fp32 tensors on the CPU.
// ATen sends fp32 products to MKL's sgemm, which on fc4's shapes (a batch of
// 50 against a 1024x3136 weight) reaches about half of oneDNN's rate inside a
// training step; other kinds and devices take `at::mm`, as `linear` does
// (ATen already uses oneDNN for bf16 on the CPU), and so do tracing and
// evaluation (`use_onednn`).
#include <ATen/TracerMode.h>
#include <torch/csrc/autograd/custom_function.h>

// Exported by libtorch_cpu (TORCH_API) but declared in a header the wheel
// does not ship: result = beta * result + alpha * mat1 @ mat2.
namespace at::native {
void mkldnn_matmul(const at::Tensor &mat1, const at::Tensor &mat2, const at::Tensor &result,
                   float beta, float alpha);
}

namespace {

// Whether oneDNN's matmul accepts fp32 products on this CPU. PyTorch 2.11's
// `mkldnn_matmul` refuses fp32 unless oneDNN could run bf16 there too
// (AVX-512 BW, VL and DQ, or AVX-NE-CONVERT), so on the AVX2-only AMD EPYC
// kind, or under ONEDNN_MAX_CPU_ISA=AVX2, it throws. The condition lives in
// a header the wheel does not ship, so the function itself is asked, once,
// with a 1x1 product; where it refuses, the layer takes `at::mm` (MKL), as
// before oneDNN was used for it.
bool onednn_takes_fp32() {
    static const bool takes = [] {
        auto one = at::ones({1, 1});
        auto result = at::empty({1, 1});
        try {
            at::native::mkldnn_matmul(one, one, result, /*beta=*/0.0f, /*alpha=*/1.0f);
            return true;
        } catch (const c10::Error &) {
            return false;
        }
    }();
    return takes;
}

// Whether `x @ weight^T` goes through oneDNN: fp32 on the CPU while training
// (gradients enabled). Not while libtorch traces (for `trainer export`): the
// tracer records dispatched ATen calls, and oneDNN's matmul is called
// directly, so a trace would miss it. Not without gradients: evaluation
// measured no faster on oneDNN, and its peak memory over 60,000 images grew
// by 135 MB in one setting (the `eval_memory` test run by cargo on a fresh
// clone), against 13 MB with `at::mm`.
bool use_onednn(const at::Tensor &x, const at::Tensor &weight) {
    return x.is_cpu() && x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
           at::hasMKLDNN() && at::GradMode::is_enabled() && !at::tracer::impl::is_dispatch_enabled() &&
           onednn_takes_fp32();
}

at::Tensor matrix_product(const at::Tensor &a, const at::Tensor &b) {
    auto result = at::empty({a.size(0), b.size(1)}, a.options());
    at::native::mkldnn_matmul(a, b, result, /*beta=*/0.0f, /*alpha=*/1.0f);
    return result;
}

struct DenseLayer : public torch::autograd::Function<DenseLayer> {
    static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x,
                              const at::Tensor &weight) {
        ctx->save_for_backward({x, weight});
        return matrix_product(x, weight.t());
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &x = saved[0];
        const auto &weight = saved[1];
        auto grad = grads[0].contiguous();
        at::Tensor grad_x, grad_weight;
        if (ctx->needs_input_grad(0)) {
            grad_x = matrix_product(grad, weight);
        }
        if (ctx->needs_input_grad(1)) {
            grad_weight = matrix_product(grad.t(), x);
        }
        return {grad_x, grad_weight};
    }
};

}  // namespace

// `x [N, in] @ weight [out, in]^T`, recorded by autograd (its backward is
// `DenseLayer::backward`). Shapes and kinds are checked here, so that a
// mismatch is an error message, not undefined behaviour inside oneDNN.
extern "C" int model_dense_layer(const at::Tensor *x, const at::Tensor *weight,
                                 at::Tensor **result, char *error, size_t error_len) {
    try {
        TORCH_CHECK(x->dim() == 2 && weight->dim() == 2 && x->size(1) == weight->size(1),
                    "dense layer: input ", x->sizes(), " does not fit weight ", weight->sizes());
        TORCH_CHECK(x->scalar_type() == weight->scalar_type() && x->device() == weight->device(),
                    "dense layer: input and weight differ in kind or device");
        *result = new at::Tensor(use_onednn(*x, *weight) ? DenseLayer::apply(x->contiguous(), *weight)
                                                         : at::mm(*x, weight->t()));
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}

// The tail of a convolution layer in training (`bn_pool_lrelu.cpp`).
at::Tensor model_bn_pool_lrelu_fused(const at::Tensor &x, const at::Tensor &beta, const at::Tensor &running_mean,
                                     const at::Tensor &running_var, double momentum, double eps, double slope,
                                     bool pool);

namespace {

// Whether the fused node can take `x`: a CPU with AVX2 and FMA (the fused
// file is compiled for them), a CPU tensor, channels-last, fp32 or bf16, even
// sides to pool, more than one value per channel. (A first bf16 build
// measured 0.93x ATen's calls; with the kernels' loops vectorised for every
// element type, a bf16 step measures 1.16x on Intel AMX, docs/PERFORMANCE.md.)
bool fusable(const at::Tensor &x, const at::Tensor &beta, bool pool) {
    static const bool cpu_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool kind = x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16;
    const bool sides = !pool || (x.size(2) % 2 == 0 && x.size(3) % 2 == 0);
    return cpu_ok && x.is_cpu() && kind && sides && x.size(0) * x.size(2) * x.size(3) > 1 &&
           x.is_contiguous(at::MemoryFormat::ChannelsLast) && beta.is_cpu() && beta.dim() == 1 &&
           beta.size(0) == x.size(1);
}

}  // namespace

// Batch norm in training mode (shift `beta`, moving averages updated in
// place), 2x2 max pooling if `pool`, leaky ReLU with `slope`: the fused node
// where `fusable` and `use_fused` asks for it (`Network::set_fused_kernels`),
// ATen's three calls otherwise (the default).
extern "C" int model_bn_pool_lrelu(const at::Tensor *x, const at::Tensor *beta,
                                   const at::Tensor *running_mean, const at::Tensor *running_var,
                                   double momentum, double eps, double slope, int pool, int use_fused,
                                   at::Tensor **result, char *error, size_t error_len) {
    try {
        TORCH_CHECK(x->dim() == 4, "batch norm, pooling and leaky ReLU: expected a 4-d input, found ",
                    x->sizes());
        at::Tensor out;
        if (use_fused && fusable(*x, *beta, pool)) {
            out = model_bn_pool_lrelu_fused(*x, *beta, *running_mean, *running_var, momentum, eps, slope,
                                            pool != 0);
        } else {
            out = at::batch_norm(*x, {}, *beta, *running_mean, *running_var, /*training=*/true, momentum, eps,
                                 /*cudnn_enabled=*/true);
            if (pool) {
                out = at::max_pool2d(out, {2, 2}, {2, 2});
            }
            out = at::leaky_relu(out, slope);
        }
        *result = new at::Tensor(std::move(out));
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}

// Adam over fp32 weights from bf16 gradients, writing each weight's bf16
// shadow in the same pass (`adam_bf16_shadow.cpp`).
void model_adam_bf16_shadow_update(const at::Tensor &param, const at::Tensor &grad, const at::Tensor &exp_avg,
                                   const at::Tensor &exp_avg_sq, const at::Tensor &shadow, double step,
                                   double lr, double beta1, double beta2, double eps);

// Whether this CPU runs `adam_bf16_shadow.cpp` (compiled for AVX2 and FMA).
extern "C" int model_bf16_shadow_supported() {
    static const bool cpu_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cpu_ok ? 1 : 0;
}

// One Adam update of `count` weights with bf16 shadows; refuses a CPU the
// kernel was not compiled for, so that it never runs an illegal instruction.
extern "C" int model_adam_bf16_shadow(at::Tensor *const *params, at::Tensor *const *grads,
                                      at::Tensor *const *exp_avgs, at::Tensor *const *exp_avg_sqs,
                                      at::Tensor *const *shadows, size_t count, double step, double lr,
                                      double beta1, double beta2, double eps, char *error, size_t error_len) {
    try {
        TORCH_CHECK(model_bf16_shadow_supported() == 1,
                    "Adam with a bf16 shadow needs a CPU with AVX2 and FMA; this one lacks them");
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < count; ++i) {
            model_adam_bf16_shadow_update(*params[i], *grads[i], *exp_avgs[i], *exp_avg_sqs[i], *shadows[i], step,
                                          lr, beta1, beta2, eps);
        }
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(error, error_len, "%s", e.what());
        return 1;
    }
}

// The tensor's version counter, which every in-place write through ATen
// advances (writes through raw pointers, like the shadow kernel's, do not).
extern "C" int64_t model_tensor_version(const at::Tensor *t) {
    return static_cast<int64_t>(t->_version());
}
