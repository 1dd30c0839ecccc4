"""Where a training step's time goes, layer by layer, with each layer's share of the matmul peak.

The trainer's graph written in PyTorch on the same libtorch (the same ATen
and oneDNN kernels the trainer calls): channels-last convolutions without
bias, batch norm with a shift only, 2x2 max pooling, then leaky ReLU 0.2; the
1024-wide dense layer, batch norm, leaky ReLU, dropout 0.3; the output layer;
fused Adam with gradients cleared to none. One difference: the trainer
computes fc4's fp32 products on oneDNN while training (its C++ shim), this
script through `F.linear` (MKL), which is what showed MKL's rate. Batch 50, random data, after a
warm-up, under `torch.profiler`; operations are grouped by their input
shapes, which tells the layers apart. The arithmetic of each matrix product
and convolution (multiply-adds counted twice) over its time is compared with
a 2048x2048 `torch.mm` in the same precision, timed in the same run.

    .libtorch/venv/bin/python scripts/profile_step.py [--threads 2] [--steps 40] [--precision fp32|bf16]

`docs/PERFORMANCE.md` records the output.
"""
import argparse
import collections
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

BATCH = 50


class TrainerGraph(nn.Module):
    """The trainer's forward pass in its order: convolution, batch norm, pooling, leaky ReLU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-3, affine=False)
        self.shift1 = nn.Parameter(torch.zeros(32))
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(64, eps=1e-3, affine=False)
        self.shift2 = nn.Parameter(torch.zeros(64))
        self.fc4 = nn.Linear(7 * 7 * 64, 1024, bias=False)
        self.bn4 = nn.BatchNorm1d(1024, eps=1e-3, affine=False)
        self.shift4 = nn.Parameter(torch.zeros(1024))
        self.fco = nn.Linear(1024, 10)

    def block(self, x, conv, bn, shift):
        x = F.batch_norm(conv(x), bn.running_mean, bn.running_var, None, shift, True, 0.1, 1e-3)
        return F.leaky_relu(F.max_pool2d(x, 2), 0.2)

    def forward(self, x):
        x = self.block(x, self.conv1, self.bn1, self.shift1)
        x = self.block(x, self.conv2, self.bn2, self.shift2).flatten(1)
        x = F.batch_norm(self.fc4(x), self.bn4.running_mean, self.bn4.running_var, None, self.shift4, True, 0.1, 1e-3)
        return self.fco(F.dropout(F.leaky_relu(x, 0.2), 0.3, True))


def layer_of(name, shapes):
    """The layer an operation belongs to, from its input shapes."""
    first = tuple(shapes[0]) if shapes and shapes[0] else ()
    second = tuple(shapes[1]) if len(shapes) > 1 and shapes[1] else ()
    if "conv" in name:
        # Forward: (input, weight, ...); backward: (grad_output, input, weight, ...).
        channels = [s[1] for s in shapes[:3] if s and len(s) == 4]
        return "conv1" if 1 in channels else "conv2"
    if name in ("aten::mm", "aten::addmm"):
        dims = set(first) | set(second) | {d for s in shapes[2:3] if s for d in s}
        return "fc4" if 3136 in dims else "fco"
    return None


def flop(name, shapes):
    """Multiply-adds counted twice, for matrix products and convolutions."""
    if name == "aten::mm":
        (m, k), (_, n) = shapes[0], shapes[1]
        return 2 * m * k * n
    if name == "aten::addmm":
        (m, k), (_, n) = shapes[1], shapes[2]
        return 2 * m * k * n
    if name == "aten::mkldnn_convolution":
        (n, c, h, w), (o, _, kh, kw) = shapes[0], shapes[1]
        return 2 * n * h * w * o * c * kh * kw
    if name == "aten::convolution_backward":
        # Weight gradient always; input gradient only where the input needs one (not conv1's image).
        (n, o, h, w), (_, c, _, _), (_, _, kh, kw) = shapes[0], shapes[1], shapes[2]
        per_gradient = 2 * n * h * w * o * c * kh * kw
        return per_gradient * (1 if c == 1 else 2)
    return 0


def matmul_gflops(dtype, n=2048, repeats=10):
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="libtorch's threads")
    parser.add_argument("--steps", type=int, default=40, help="profiled steps, after 20 of warm-up")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the step's arithmetic")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bf16 = args.precision == "bf16"
    model = TrainerGraph().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    images = torch.rand(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    for _ in range(20):
        step()
    peak = matmul_gflops(torch.bfloat16 if bf16 else torch.float32)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall = (time.perf_counter() - start) / args.steps
    rows = collections.defaultdict(lambda: [0.0, 0])
    for event in profiler.key_averages(group_by_input_shape=True):
        shapes = [list(s) for s in event.input_shapes]
        layer = layer_of(event.key, shapes)
        kind = {"aten::mkldnn_convolution": "forward", "aten::convolution_backward": "backward",
                "aten::mm": "products", "aten::addmm": "products"}.get(event.key)
        if layer and kind:
            row = rows[(layer, kind)]
            row[0] += event.self_cpu_time_total / 1e3 / args.steps
            row[1] += flop(event.key, shapes) * event.count / args.steps
        else:
            rows[("other", event.key)][0] += event.self_cpu_time_total / 1e3 / args.steps
    print(f"{args.precision} training step, batch {BATCH}, {args.threads} threads: {1e3 * wall:.1f} ms per step "
          f"under the profiler ({BATCH / wall:.0f} images/s); torch.mm 2048x2048: {peak:.0f} GFLOP/s")
    print(f"  {'layer':8s} {'operation':34s} {'ms/step':>8s} {'MFLOP':>8s} {'GFLOP/s':>8s} {'of mm':>6s}")
    arithmetic = sorted(((k, v) for k, v in rows.items() if k[0] != "other"), key=lambda item: -item[1][0])
    for (layer, kind), (ms, flops) in arithmetic:
        rate = flops / ms / 1e6 if ms else 0.0
        print(f"  {layer:8s} {kind:34s} {ms:8.2f} {flops / 1e6:8.1f} {rate:8.0f} {100 * rate / peak:5.0f}%")
    others = sorted(((k, v) for k, v in rows.items() if k[0] == "other"), key=lambda item: -item[1][0])
    for (_, name), (ms, _) in others[:12]:
        print(f"  {'':8s} {name:34s} {ms:8.2f}")
    total_ms = sum(v[0] for v in rows.values())
    arithmetic_ms = sum(v[0] for k, v in rows.items() if k[0] != "other")
    print(f"  matrix products and convolutions: {arithmetic_ms:.1f} of {total_ms:.1f} ms of operator time "
          f"({100 * arithmetic_ms / total_ms:.0f}%)")


if __name__ == "__main__":
    main()
