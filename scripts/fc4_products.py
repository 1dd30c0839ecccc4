"""fc4's three matrix products on MKL (`torch.mm`) against oneDNN's inner product, in one run.

The intended network's dense layer multiplies a batch of 50 by a 1024x3136
weight: forward `x @ W^T`, and in the backward pass `g @ W` and `g^T @ x`.
In fp32 training the trainer runs them on oneDNN's matmul where PyTorch lets
it (`crates/model/csrc/aten_shim.cpp`) and on `at::mm` (MKL) where PyTorch
2.11 refuses fp32 (CPUs without AVX-512 BW/VL/DQ, such as the AMD AVX2 kind).
This script asks whether oneDNN's inner product, which PyTorch does let run
fp32 there (`mkldnn_linear` and its two backward ops, on oneDNN-layout
tensors), would be a faster way onto oneDNN for that kind. The two sides take
turns, round after round; the conversions to and from oneDNN's layout are
counted, as a training step would pay them. It checks that both sides agree
before timing.

    .libtorch/venv/bin/python scripts/fc4_products.py [--rounds 5] [--threads 2] [--isa avx2]

`--isa avx2` caps ATen, oneDNN and MKL at AVX2 as `bench_step.py --isa avx2`
does (the same variables; the script restarts itself with them).
"""
import argparse
import statistics
import time

import torch

from bench_step import ISA_CAPS, cap_isa, cpu_kind, cpu_name, isa_note

BATCH, INPUTS, OUTPUTS = 50, 3136, 1024
FLOP = 3 * 2 * BATCH * INPUTS * OUTPUTS


def on_mkl(x, weight, grad):
    """The three products as `at::mm` computes them (MKL's sgemm for fp32)."""
    return torch.mm(x, weight.t()), torch.mm(grad, weight), torch.mm(grad.t(), x)


def on_onednn_inner_product(x, weight, grad):
    """The same products through oneDNN's inner product, layout conversions included."""
    x_onednn, grad_onednn = x.to_mkldnn(), grad.to_mkldnn()
    y = torch._C._nn.mkldnn_linear(x_onednn, weight, None).to_dense()
    grad_x = torch.ops.aten.mkldnn_linear_backward_input([BATCH, INPUTS], grad_onednn, weight)
    grad_weight, _ = torch.ops.aten.mkldnn_linear_backward_weights(grad_onednn, x_onednn, weight, False)
    return y, grad_x, grad_weight


def check_agreement(x, weight, grad):
    """Fails unless both sides give the same three products, to fp32 rounding."""
    for name, a, b in zip(("forward", "input gradient", "weight gradient"), on_mkl(x, weight, grad),
                          on_onednn_inner_product(x, weight, grad)):
        b = b.to_dense() if b.is_mkldnn else b
        error = (a - b).abs().max().item() / a.abs().max().item()
        if error > 1e-5:
            raise SystemExit(f"fc4_products: the {name} differs between MKL and oneDNN by {error:.2e} (relative)")


def seconds_per_call(side, args, calls, warmup=20):
    for _ in range(warmup):
        side(*args)
    start = time.perf_counter()
    for _ in range(calls):
        side(*args)
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each side runs once per round")
    parser.add_argument("--calls", type=int, default=200, help="timed calls of the three products per side per round")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--isa", choices=sorted(ISA_CAPS), help="cap the vector instructions (an emulated machine kind)")
    args = parser.parse_args()
    if args.isa is not None:
        cap_isa(args.isa)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tensors = (torch.randn(BATCH, INPUTS), torch.randn(OUTPUTS, INPUTS) * 0.01, torch.randn(BATCH, OUTPUTS))
    check_agreement(*tensors)
    sides = {"MKL (torch.mm)": on_mkl, "oneDNN inner product": on_onednn_inner_product}
    times = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            times[name].append(seconds_per_call(side, tensors, args.calls))
    print(f"{cpu_name()}; kind: {cpu_kind()}{isa_note(args.isa)}; torch {torch.__version__}; {args.threads} threads")
    print(f"fc4's three products (batch {BATCH}, {OUTPUTS}x{INPUTS}), median of {args.rounds} rounds:")
    baseline = statistics.median(times["MKL (torch.mm)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:24} {median * 1e3:7.3f} ms  {FLOP / median / 1e9:6.1f} GFLOP/s  {baseline / median:5.2f}x MKL")


if __name__ == "__main__":
    main()
