// Adam for a parameter trained in bf16 from an fp32 master copy, in one pass
// over memory: it reads the fp32 weight, its bf16 gradient and both fp32
// moments, and writes the weight, the moments and the weight's bf16 copy
// (the "shadow" the next forward pass computes with). The bf16 step
// otherwise casts the weight to bf16 before the forward pass and casts the
// gradient back to fp32 after the backward pass, two more passes over the
// largest tensor (fc4's 3.2 million values) every step, and then runs
// ATen's fused Adam over the fp32 gradient.
//
// The formula is ATen's fused Adam's (`FusedAdamKernel.cpp`, no weight
// decay, no amsgrad) in float arithmetic; the gradient is the bf16 value
// widened exactly, so the update differs from ATen's only in float rounding
// (the compiler may contract a multiply and an add into one FMA). The bf16
// copy is rounded to nearest even, NaN to a quiet NaN: c10::BFloat16's cast,
// so the shadow equals `weight.to(bfloat16)` bit for bit. Every element is
// computed alone, so the result does not depend on how the threads split
// the work. Compiled for AVX2 and FMA, as `bn_pool_lrelu.cpp`; the shim
// calls it only on CPUs that have them.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

inline float widen(uint16_t bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof value);
    return value;
}

inline uint16_t round_to_bf16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    const uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);
    const auto rounded = static_cast<uint16_t>((bits + rounding_bias) >> 16);
    return std::isnan(value) ? static_cast<uint16_t>(0x7FC0u) : rounded;
}

void check_operands(const at::Tensor &param, const at::Tensor &grad, const at::Tensor &exp_avg,
                    const at::Tensor &exp_avg_sq, const at::Tensor &shadow) {
    for (const at::Tensor *t : {&param, &grad, &exp_avg, &exp_avg_sq, &shadow}) {
        TORCH_CHECK(t->is_cpu() && t->is_contiguous(), "Adam with a bf16 shadow: every operand must be a ",
                    "contiguous CPU tensor, found one of shape ", t->sizes());
        TORCH_CHECK(t->sizes() == param.sizes(), "Adam with a bf16 shadow: shapes differ: ", t->sizes(),
                    " against the weight's ", param.sizes());
    }
    TORCH_CHECK(param.scalar_type() == at::kFloat && exp_avg.scalar_type() == at::kFloat &&
                    exp_avg_sq.scalar_type() == at::kFloat,
                "Adam with a bf16 shadow: the weight and both moments must be fp32");
    TORCH_CHECK(grad.scalar_type() == at::kBFloat16 && shadow.scalar_type() == at::kBFloat16,
                "Adam with a bf16 shadow: the gradient and the shadow must be bf16");
}

// Adam's coefficients for one step, as floats (ATen's fused kernel's types).
struct Coefficients {
    float step_size;
    float bias_correction2_sqrt;
    float grad_weight;
    float sq_grad_weight;
    float beta2;
    float eps;
};

// The update of elements [0, n) of one chunk. The operands are restrict
// pointers and the coefficients a value, so the compiler knows no store
// changes another operand or a coefficient and vectorises the loop (with
// captured references it kept it scalar: 8 times slower on 3.2 million
// weights).
void update_chunk(float *__restrict p, float *__restrict m, float *__restrict v, const uint16_t *__restrict g,
                  uint16_t *__restrict s, int64_t n, const Coefficients c) {
    for (int64_t i = 0; i < n; ++i) {
        const float grad_i = widen(g[i]);
        // exp_avg.lerp_(grad, 1 - beta1), in ATen's form for a weight below 0.5.
        const float m_i = m[i] + c.grad_weight * (grad_i - m[i]);
        const float v_i = v[i] * c.beta2 + c.sq_grad_weight * grad_i * grad_i;
        const float denom = std::sqrt(v_i) / c.bias_correction2_sqrt + c.eps;
        const float p_i = p[i] + (-c.step_size) * m_i / denom;
        m[i] = m_i;
        v[i] = v_i;
        p[i] = p_i;
        s[i] = round_to_bf16(p_i);
    }
}

}  // namespace

// One update of `param` (fp32) from `grad` (bf16) with the moments, writing
// `shadow` (bf16) = the updated weight rounded. `step` is the step number,
// already counted for this update.
void model_adam_bf16_shadow_update(const at::Tensor &param, const at::Tensor &grad, const at::Tensor &exp_avg,
                                   const at::Tensor &exp_avg_sq, const at::Tensor &shadow, double step,
                                   double lr, double beta1, double beta2, double eps) {
    check_operands(param, grad, exp_avg, exp_avg_sq, shadow);
    // As ATen: the bias corrections in double, then every coefficient as a float.
    const double bias_correction1 = 1 - std::pow(beta1, step);
    const double bias_correction2 = 1 - std::pow(beta2, step);
    const Coefficients coefficients{
        static_cast<float>(lr / bias_correction1),   static_cast<float>(std::sqrt(bias_correction2)),
        static_cast<float>(1 - beta1),               static_cast<float>(1 - beta2),
        static_cast<float>(beta2),                   static_cast<float>(eps),
    };
    float *p = param.data_ptr<float>();
    float *m = exp_avg.data_ptr<float>();
    float *v = exp_avg_sq.data_ptr<float>();
    const auto *g = reinterpret_cast<const uint16_t *>(grad.data_ptr<at::BFloat16>());
    auto *s = reinterpret_cast<uint16_t *>(shadow.data_ptr<at::BFloat16>());
    at::parallel_for(0, param.numel(), 16384, [=](int64_t begin, int64_t end) {
        update_chunk(p + begin, m + begin, v + begin, g + begin, s + begin, end - begin, coefficients);
    });
}
