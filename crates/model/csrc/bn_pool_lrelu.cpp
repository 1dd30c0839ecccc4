// The tail of a convolution layer while training: batch norm with the
// batch's statistics (a shift, no scale), then 2x2 max pooling where the layer
// has it, then leaky ReLU, as one autograd node with hand-written passes over
// channels-last memory. ATen runs the same as three nodes: batch norm writes
// the normalised activations, pooling reads them and writes its output and
// 64-bit indices, leaky ReLU reads and writes again; backward, pooling's
// gradient is a full-size tensor of zeros with the gradients scattered in,
// which batch norm's backward then reads twice. Here the forward pass reads
// the input three times (mean, variance, then normalise, pool and activate in
// one pass) and writes the output and one 32-bit index per pooled value (which
// of the four won); the backward pass reads the pooled gradient once for the
// per-channel sums and writes the input's gradient in one pass.
//
// The kernel takes fp32 and bf16 (computing in fp32 and rounding each output
// once); the shim (`aten_shim.cpp`) sends it work only when asked. For the
// CPU, channels-last 4-d inputs with even sides
// when pooling, on a CPU with AVX2 and FMA (this file is compiled for them, so
// that the loops over channels vectorise; `aten_shim.cpp` checks the CPU
// before calling in); anything else takes the same three ATen calls the model
// crate made before (so CUDA and odd shapes compute as they always did).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Shape {
    int64_t n, c, h, w;
    bool pool;
    int64_t out_h() const { return pool ? h / 2 : h; }
    int64_t out_w() const { return pool ? w / 2 : w; }
    int64_t positions() const { return n * h * w; }
    int64_t out_positions() const { return n * out_h() * out_w(); }
};

// Per-channel sums over `count` positions: `add_row(position, sums)` adds
// one position's values to `sums`, each thread into its own row, then the
// rows are added in thread order.
template <typename AddRow>
std::vector<float> channel_sums(int64_t count, int64_t channels, const AddRow &add_row) {
    const int64_t n_threads = at::get_num_threads();
    std::vector<float> partial(static_cast<size_t>(n_threads * channels), 0.0f);
    at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        float *sums = partial.data() + at::get_thread_num() * channels;
        for (int64_t position = begin; position < end; ++position) {
            add_row(position, sums);
        }
    });
    std::vector<float> total(static_cast<size_t>(channels), 0.0f);
    for (int64_t thread = 0; thread < n_threads; ++thread) {
        for (int64_t c = 0; c < channels; ++c) {
            total[c] += partial[thread * channels + c];
        }
    }
    return total;
}

// The input position (n, row, col) of pooled position `out_position` and
// window cell `cell` (0..3: row-major in the 2x2 window), or of
// `out_position` itself without pooling.
inline int64_t input_position(const Shape &s, int64_t out_position, int cell) {
    if (!s.pool) {
        return out_position;
    }
    const int64_t ow = s.out_w(), oh = s.out_h();
    const int64_t col = out_position % ow, row = (out_position / ow) % oh, n = out_position / (ow * oh);
    return (n * s.h + 2 * row + cell / 2) * s.w + 2 * col + cell % 2;
}

// Element loads and stores as plain bit operations, so that the loops over
// bf16 vectorise as those over fp32 do (through c10::BFloat16's conversions
// GCC left the backward pass's loops scalar). The rounding is the one of
// c10::BFloat16's constructor, bit for bit: to nearest even, NaN to 0x7FC0.
template <typename scalar_t>
inline float load(scalar_t value) {
    return static_cast<float>(value);
}

inline float load(c10::BFloat16 value) {
    const uint32_t bits = static_cast<uint32_t>(value.x) << 16;
    float result;
    std::memcpy(&result, &bits, sizeof result);
    return result;
}

template <typename scalar_t>
inline scalar_t store(float value) {
    return static_cast<scalar_t>(value);
}

template <>
inline c10::BFloat16 store<c10::BFloat16>(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    const bool nan = (bits & UINT32_C(0x7FFFFFFF)) > UINT32_C(0x7F800000);
    const uint32_t rounded = (bits + UINT32_C(0x7FFF) + ((bits >> 16) & 1)) >> 16;
    return c10::BFloat16(static_cast<uint16_t>(nan ? UINT32_C(0x7FC0) : rounded), c10::BFloat16::from_bits());
}

// Leaky ReLU without a branch: `y` for y > 0, `slope * y` otherwise (exactly:
// one of the two terms is zero).
inline float leaky(float y, float slope) {
    return std::max(y, 0.0f) + slope * std::min(y, 0.0f);
}

template <typename scalar_t>
void forward_kernel(const Shape &s, const scalar_t *__restrict x, const float *__restrict beta,
                    const float *__restrict mean, const float *__restrict invstd, float slope,
                    scalar_t *__restrict out, int32_t *__restrict winner) {
    const int64_t channels = s.c;
    at::parallel_for(0, s.out_positions(), 1, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
            scalar_t *__restrict o = out + p * channels;
            if (!s.pool) {
                const scalar_t *__restrict r = x + p * channels;
                for (int64_t c = 0; c < channels; ++c) {
                    const float y = (load(r[c]) - mean[c]) * invstd[c] + beta[c];
                    o[c] = store<scalar_t>(leaky(y, slope));
                }
                continue;
            }
            const scalar_t *__restrict r0 = x + input_position(s, p, 0) * channels;
            const scalar_t *__restrict r1 = x + input_position(s, p, 1) * channels;
            const scalar_t *__restrict r2 = x + input_position(s, p, 2) * channels;
            const scalar_t *__restrict r3 = x + input_position(s, p, 3) * channels;
            int32_t *__restrict won = winner + p * channels;
            for (int64_t c = 0; c < channels; ++c) {
                const float v0 = load(r0[c]), v1 = load(r1[c]);
                const float v2 = load(r2[c]), v3 = load(r3[c]);
                const float best = std::max(std::max(v0, v1), std::max(v2, v3));
                // The first cell holding the maximum, as ATen's max pooling keeps the first
                // of equal values; selects rather than branches, so that the loop vectorises.
                int32_t cell = 3;
                cell = v2 >= best ? 2 : cell;
                cell = v1 >= best ? 1 : cell;
                cell = v0 >= best ? 0 : cell;
                won[c] = cell;
                // Normalising is increasing (invstd > 0), so the maximum's normal form is the normal forms' maximum.
                const float y = (best - mean[c]) * invstd[c] + beta[c];
                o[c] = store<scalar_t>(leaky(y, slope));
            }
        }
    });
}

template <typename scalar_t>
void backward_kernel(const Shape &s, const scalar_t *__restrict x, const scalar_t *__restrict grad_out,
                     const scalar_t *__restrict out, const int32_t *__restrict winner,
                     const float *__restrict mean, const float *__restrict invstd, float slope,
                     scalar_t *__restrict grad_x, float *__restrict grad_beta) {
    const int64_t channels = s.c;
    // The rows of pooled position `p`'s window (all four the same row without pooling).
    auto window = [&s, x, channels](int64_t p, int cell) {
        return x + input_position(s, p, s.pool ? cell : 0) * channels;
    };
    // Per channel: the sum of the gradients reaching batch norm's output (leaky
    // ReLU's derivative read from the output's sign, which is the input's), and
    // of each times the normal form of the input that won its window. The winner
    // holds the window's maximum, so the maximum is recomputed rather than the
    // four cells masked (the same sums, bit for bit: the masked cells added
    // zeros). Everything a loop reads is a local copy, so that stores to the sums
    // cannot alias it and the loops vectorise.
    const int64_t n_threads = at::get_num_threads();
    std::vector<float> partial(static_cast<size_t>(n_threads * 2 * channels), 0.0f);
    at::parallel_for(0, s.out_positions(), 1, [&](int64_t begin, int64_t end) {
        float *__restrict sum_dy = partial.data() + at::get_thread_num() * 2 * channels;
        float *__restrict sum_dy_xhat = sum_dy + channels;
        const float leak = slope;
        for (int64_t p = begin; p < end; ++p) {
            const scalar_t *__restrict go = grad_out + p * channels;
            const scalar_t *__restrict o = out + p * channels;
            const scalar_t *__restrict r0 = window(p, 0);
            const scalar_t *__restrict r1 = window(p, 1);
            const scalar_t *__restrict r2 = window(p, 2);
            const scalar_t *__restrict r3 = window(p, 3);
            for (int64_t c = 0; c < channels; ++c) {
                // (The derivative in a variable of its own: written inside the product, GCC
                // 12 leaves the loop scalar, "control flow in loop".)
                const float derivative = load(o[c]) > 0.0f ? 1.0f : leak;
                const float dy = load(go[c]) * derivative;
                const float best = std::max(std::max(load(r0[c]), load(r1[c])), std::max(load(r2[c]), load(r3[c])));
                sum_dy[c] += dy;
                sum_dy_xhat[c] += dy * ((best - mean[c]) * invstd[c]);
            }
        }
    });
    const float count = static_cast<float>(s.positions());
    std::vector<float> mean_dy(static_cast<size_t>(channels), 0.0f), mean_dy_xhat(static_cast<size_t>(channels), 0.0f);
    for (int64_t thread = 0; thread < n_threads; ++thread) {
        for (int64_t c = 0; c < channels; ++c) {
            mean_dy[c] += partial[(thread * 2) * channels + c];
            mean_dy_xhat[c] += partial[(thread * 2 + 1) * channels + c];
        }
    }
    for (int64_t c = 0; c < channels; ++c) {
        grad_beta[c] = mean_dy[c];
        mean_dy[c] /= count;
        mean_dy_xhat[c] /= count;
    }
    const float *__restrict a = mean_dy.data();
    const float *__restrict b = mean_dy_xhat.data();
    const int cells = s.pool ? 4 : 1;
    at::parallel_for(0, s.out_positions(), 1, [&](int64_t begin, int64_t end) {
        const float leak = slope;
        const bool pooled = s.pool;
        for (int64_t p = begin; p < end; ++p) {
            const scalar_t *__restrict go = grad_out + p * channels;
            const scalar_t *__restrict o = out + p * channels;
            const int32_t *__restrict won = winner + p * channels;
            for (int cell = 0; cell < cells; ++cell) {
                const int64_t position = input_position(s, p, cell);
                const scalar_t *__restrict r = x + position * channels;
                scalar_t *__restrict gx = grad_x + position * channels;
                for (int64_t c = 0; c < channels; ++c) {
                    const float derivative = load(o[c]) > 0.0f ? 1.0f : leak;
                    const float g = load(go[c]) * derivative;
                    const float dy = (!pooled || won[c] == cell) ? g : 0.0f;
                    const float xhat = (load(r[c]) - mean[c]) * invstd[c];
                    gx[c] = store<scalar_t>((dy - a[c] - xhat * b[c]) * invstd[c]);
                }
            }
        }
    });
}

at::Tensor channels_last_empty(const at::Tensor &like, int64_t h, int64_t w, at::ScalarType kind) {
    return at::empty({like.size(0), like.size(1), h, w},
                     like.options().dtype(kind).memory_format(at::MemoryFormat::ChannelsLast));
}

struct BnPoolLrelu : public torch::autograd::Function<BnPoolLrelu> {
    static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x,
                              const at::Tensor &beta, const at::Tensor &running_mean,
                              const at::Tensor &running_var, double momentum, double eps,
                              double slope, bool pool) {
        const Shape s{x.size(0), x.size(1), x.size(2), x.size(3), pool};
        at::Tensor mean_t, invstd_t;
        at::Tensor out = channels_last_empty(x, s.out_h(), s.out_w(), x.scalar_type());
        at::Tensor winner = channels_last_empty(x, s.out_h(), s.out_w(), at::kInt);
        AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "bn_pool_lrelu", [&] {
            const scalar_t *data = x.const_data_ptr<scalar_t>();
            const int64_t channels = s.c;
            const float count = static_cast<float>(s.positions());
            std::vector<float> mean = channel_sums(s.positions(), channels, [&](int64_t p, float *sums) {
                const scalar_t *row = data + p * channels;
                for (int64_t c = 0; c < channels; ++c) sums[c] += load(row[c]);
            });
            for (auto &value : mean) value /= count;
            std::vector<float> var = channel_sums(s.positions(), channels, [&](int64_t p, float *sums) {
                const scalar_t *row = data + p * channels;
                for (int64_t c = 0; c < channels; ++c) {
                    const float centred = load(row[c]) - mean[c];
                    sums[c] += centred * centred;
                }
            });
            for (auto &value : var) value /= count;
            mean_t = at::tensor(at::ArrayRef<float>(mean));
            invstd_t = at::rsqrt(at::tensor(at::ArrayRef<float>(var)) + eps);
            {
                at::NoGradGuard no_grad;
                // The moving variance follows the unbiased batch variance, as ATen's.
                const double unbiased = s.positions() > 1 ? count / (count - 1.0) : 1.0;
                running_mean.mul_(1.0 - momentum).add_(mean_t.to(running_mean.scalar_type()), momentum);
                running_var.mul_(1.0 - momentum)
                    .add_(at::tensor(at::ArrayRef<float>(var)).to(running_var.scalar_type()), momentum * unbiased);
            }
            const at::Tensor beta_f = beta.to(at::kFloat).contiguous();
            forward_kernel<scalar_t>(s, data, beta_f.const_data_ptr<float>(), mean_t.const_data_ptr<float>(),
                                     invstd_t.const_data_ptr<float>(), static_cast<float>(slope),
                                     out.mutable_data_ptr<scalar_t>(), winner.mutable_data_ptr<int32_t>());
        });
        ctx->save_for_backward({x, out, winner, mean_t, invstd_t});
        ctx->saved_data["slope"] = slope;
        ctx->saved_data["pool"] = pool;
        ctx->saved_data["beta_kind"] = static_cast<int64_t>(beta.scalar_type());
        return out;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &x = saved[0], &out = saved[1], &winner = saved[2], &mean = saved[3], &invstd = saved[4];
        const Shape s{x.size(0), x.size(1), x.size(2), x.size(3), ctx->saved_data["pool"].toBool()};
        const float slope = static_cast<float>(ctx->saved_data["slope"].toDouble());
        const at::Tensor grad_out = grads[0].contiguous(at::MemoryFormat::ChannelsLast).to(x.scalar_type());
        at::Tensor grad_x = channels_last_empty(x, s.h, s.w, x.scalar_type());
        at::Tensor grad_beta = at::empty({s.c}, x.options().dtype(at::kFloat));
        AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "bn_pool_lrelu_backward", [&] {
            backward_kernel<scalar_t>(s, x.const_data_ptr<scalar_t>(), grad_out.const_data_ptr<scalar_t>(),
                                      out.const_data_ptr<scalar_t>(), winner.const_data_ptr<int32_t>(),
                                      mean.const_data_ptr<float>(), invstd.const_data_ptr<float>(), slope,
                                      grad_x.mutable_data_ptr<scalar_t>(), grad_beta.mutable_data_ptr<float>());
        });
        const auto beta_kind = static_cast<at::ScalarType>(ctx->saved_data["beta_kind"].toInt());
        return {grad_x, grad_beta.to(beta_kind), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
                at::Tensor(), at::Tensor()};
    }
};

}  // namespace

// The fused node (`fusable` checked by the caller, `aten_shim.cpp`).
at::Tensor model_bn_pool_lrelu_fused(const at::Tensor &x, const at::Tensor &beta, const at::Tensor &running_mean,
                                     const at::Tensor &running_var, double momentum, double eps, double slope,
                                     bool pool) {
    return BnPoolLrelu::apply(x, beta, running_mean, running_var, momentum, eps, slope, pool);
}
