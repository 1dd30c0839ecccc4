"""The trainer's training step and evaluation against PyTorch eager on the same CPU, in one run.

Both sides run the same network (the seed's intended CNN: 5x5 convolutions
with 32 and 64 channels, batch norm, leaky ReLU 0.2, a 1024-wide dense layer,
dropout 0.3), the same batch, the same number of threads, on random data (the
speed does not depend on the values), timed after a warm-up. The contestants
take turns, round after round, so that a machine that slows down (another
job, a thermal limit) slows them all alike; the medians are compared.

PyTorch is timed as a user would write it (`nn.Conv2d`, `nn.BatchNorm2d`,
`F.leaky_relu(x, 0.2)`, `torch.optim.Adam` with its defaults, NCHW), and in
its faster eager forms: `channels_last`, `Adam(fused=True)`, and both. The
fastest of those is "PyTorch's best eager form". `torch.compile` (inductor,
on channels-last with fused Adam) is timed too, its compilation excluded:
each round compiles once and times the steps after the warm-up. A large `torch.mm`, timed
in the same run, gives the machine's matmul throughput; the trainer's step is
reported as a fraction of it (about 82 MFLOP per image: 27.8 forward, 54.3
backward).

    cargo build --release -p model --example bench
    .libtorch/venv/bin/python scripts/bench_step.py [--rounds 5] [--threads 2] [--device cuda] [--bf16 auto|yes|no] [--isa avx2]

`--isa avx2` caps both sides at AVX2 (ATen's kernels, oneDNN's and MKL's,
through their environment variables, the script restarting itself so that
they are read before the first operation): on an AVX-512 machine it stands
in for the AMD AVX2 kind, which has the same two FMA pipes but no wider
vectors. It is an emulation: the machine's caches, clock and memory stay
what they are.

Where the CPU computes bf16 natively (AVX512-BF16), or on CUDA, it also
times the trainer's `--precision bf16` step against PyTorch's best eager
form under `torch.autocast(dtype=torch.bfloat16)`, and a bf16 `torch.mm`.

On a GPU (`--device cuda`), every batch starts on the host on both sides, as
in training, and the timers wait for the device (`torch.cuda.synchronize`).

It prints a table and one JSON line with every figure; `docs/PERFORMANCE.md`
records the results.
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target/release/examples/bench")

# Multiply-adds counted twice, per image, of the intended network.
CONV1 = 28 * 28 * 32 * 25 * 2
CONV2 = 14 * 14 * 64 * 32 * 25 * 2
FC4 = 7 * 7 * 64 * 1024 * 2
FCO = 1024 * 10 * 2
FORWARD_FLOP = CONV1 + CONV2 + FC4 + FCO
# Backward: both gradients of conv2, fc4 and fco, only the weight gradient of conv1 (its input needs none).
BACKWARD_FLOP = CONV1 + 2 * (CONV2 + FC4 + FCO)
STEP_FLOP = FORWARD_FLOP + BACKWARD_FLOP


class Net(nn.Module):
    """The intended network, written the idiomatic way."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-3)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(64, eps=1e-3)
        self.fc4 = nn.Linear(7 * 7 * 64, 1024, bias=False)
        self.bn4 = nn.BatchNorm1d(1024, eps=1e-3)
        self.fco = nn.Linear(1024, 10)
        # The seed's batch norm has a shift but no scale.
        for bn in (self.bn1, self.bn2, self.bn4):
            bn.weight.requires_grad_(False)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn1(self.conv1(x)), 0.2), 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2(self.conv2(x)), 0.2), 2)
        x = F.dropout(F.leaky_relu(self.bn4(self.fc4(x.flatten(1))), 0.2), 0.3, self.training)
        return self.fco(x)


def cpuinfo_field(name):
    """The first value of `name` in /proc/cpuinfo ("" where absent or unreadable)."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), "")


def cpu_name():
    """The CPU's model name and its widest vector instructions, from /proc/cpuinfo."""
    name, flags = cpuinfo_field("model name"), cpuinfo_field("flags").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name or platform.machine()} ({vector}{', BF16' if 'avx512_bf16' in flags else ''})"


def cpu_kind():
    """The machine kind the performance goals name: Intel AMX, AMD AVX-512, AMD AVX2 (or the vendor and vector width)."""
    vendor, flags = cpuinfo_field("vendor_id"), cpuinfo_field("flags").split()
    maker = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or platform.machine())
    if "amx_bf16" in flags:
        return f"{maker} AMX"
    return f"{maker} {'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}"


# The variables each library reads to cap its kernels' vector instructions.
ISA_CAPS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def cap_isa(isa):
    """Restarts this script with `isa`'s caps in the environment unless they
    are there already: ATen, oneDNN and MKL read them once, at their first
    operation, which importing torch may already have run."""
    caps = ISA_CAPS[isa]
    if all(os.environ.get(name) == value for name, value in caps.items()):
        return
    # TorchInductor's cache does not tell kernels compiled under ATen's full
    # capability from capped ones: reusing them crashed a capped run in
    # aten.convolution. A fresh cache for every capped run.
    cache = tempfile.mkdtemp(prefix=f"inductor-{isa}-")
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **caps, "TORCHINDUCTOR_CACHE_DIR": cache})


def isa_note(isa):
    """How the kind line says the vector instructions were capped ("" when they were not)."""
    if isa is None:
        return ""
    caps = ", ".join(f"{name}={value}" for name, value in ISA_CAPS[isa].items())
    return f", capped to {isa.upper()} ({caps}; ATen reports {torch.backends.cpu.get_cpu_capability()})"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pytorch_train(channels_last, fused, batch, steps, warmup, device, bf16=False, compiled=False):
    """Images per second of PyTorch's training step in one eager form; with
    `bf16`, its forward pass under `torch.autocast` to bfloat16 (the loss in
    fp32), PyTorch's own mixed precision; with `compiled`, the model under
    `torch.compile` (the warm-up steps include the compilation)."""
    torch.manual_seed(0)
    model = Net().to(device)
    host_images = torch.rand(batch, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        host_images = host_images.contiguous(memory_format=torch.channels_last)
    host_labels = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                 fused=True if fused else None)
    model.train()
    if compiled:
        torch._dynamo.reset()
        model = torch.compile(model)

    def step():
        images, labels = host_images.to(device), host_labels.to(device)
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def pytorch_eval(batch, n_images, device):
    """Seconds of PyTorch's `no_grad` evaluation (loss and accuracy) of `n_images`."""
    torch.manual_seed(0)
    model = Net().to(device).eval()
    images = torch.rand(n_images, 1, 28, 28)
    labels = torch.randint(0, 10, (n_images,))
    with torch.no_grad():
        model(images[:batch].to(device))
        synchronize(device)
        start = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for first in range(0, n_images, batch):
            batch_images, batch_labels = images[first:first + batch].to(device), labels[first:first + batch].to(device)
            logits = model(batch_images)
            loss_sum += F.cross_entropy(logits, batch_labels, reduction="sum").item()
            correct += int((logits.argmax(1) == batch_labels).sum())
        return time.perf_counter() - start


def matmul_gflops(device, n=2048, repeats=10, dtype=torch.float32):
    """The best GFLOP/s of an n x n `torch.mm` in `dtype`."""
    a, b = torch.rand(n, n, device=device, dtype=dtype), torch.rand(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def pin_malloc_thresholds():
    """Pins glibc malloc's thresholds in this process as the trainer pins its own.

    With glibc's dynamic thresholds a step's blocks may be handed back to the
    system and faulted in again, zeroed, every step, by the luck of the heap's
    layout (`model::allocator`): measured on an Intel Xeon, 25-45% of a
    step's speed, on either side. Pinned on both sides, the comparison is of
    the steps, not of the layouts.
    """
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if libc.mallopt(m_mmap_threshold, 32 << 20) != 1 or libc.mallopt(m_trim_threshold, 1 << 30) != 1:
        sys.exit("glibc refused mallopt: run with --default-heap")


def trainer(mode, threads, **flags):
    """One JSON result of the Rust bench example."""
    command = [BENCH, mode, "--threads", str(threads)]
    for name, value in flags.items():
        command += ["--" + name, str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; every contestant runs once per round")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per contestant per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before those")
    parser.add_argument("--batch", type=int, default=50, help="training batch size")
    parser.add_argument("--eval-batch", type=int, default=500, help="evaluation batch size")
    parser.add_argument("--eval-images", type=int, default=10000, help="images per evaluation pass")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N], for both sides")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                        help="also time both sides in bf16 (auto: on CUDA, and on CPUs with AVX512-BF16)")
    parser.add_argument("--default-heap", action="store_true",
                        help="leave glibc's malloc thresholds at their defaults on both sides (BENCH_HEAP=default)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile contestant")
    parser.add_argument("--isa", choices=sorted(ISA_CAPS),
                        help="cap both sides' vector instructions (an AVX-512 machine standing in for the AVX2 kind)")
    args = parser.parse_args()
    if args.isa is not None:
        cap_isa(args.isa)
    device = torch.device(args.device)
    if args.default_heap:
        os.environ["BENCH_HEAP"] = "default"
    else:
        pin_malloc_thresholds()
    if not os.path.exists(BENCH):
        sys.exit(f"{BENCH} is missing: run `cargo build --release -p model --example bench` first")
    torch.set_num_threads(args.threads)
    # Capped at AVX2 the CPU has no bf16 instructions left to time.
    native_bf16 = "BF16" in cpu_name() and args.isa is None
    with_bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and (device.type == "cuda" or native_bf16))

    train_forms = {
        "pytorch idiomatic": dict(channels_last=False, fused=False),
        "pytorch channels_last": dict(channels_last=True, fused=False),
        "pytorch fused Adam": dict(channels_last=False, fused=True),
        "pytorch channels_last + fused Adam": dict(channels_last=True, fused=True),
    }
    compiled_forms = {} if args.no_compile else {
        "pytorch torch.compile, channels_last + fused Adam": dict(channels_last=True, fused=True, compiled=True),
    }
    bf16_forms = {"pytorch channels_last + fused Adam, autocast bf16": dict(channels_last=True, fused=True, bf16=True)}
    train = {name: [] for name in ["trainer", *train_forms, *compiled_forms]}
    if with_bf16:
        train.update({name: [] for name in ["trainer bf16", *bf16_forms]})
    evals = {"trainer": [], "pytorch no_grad": []}
    matmul, matmul_bf16 = [], []
    for round_index in range(args.rounds):
        matmul.append(matmul_gflops(device))
        for precision in ["fp32", "bf16"] if with_bf16 else ["fp32"]:
            name = "trainer" if precision == "fp32" else "trainer bf16"
            train[name].append(trainer("train", args.threads, batch=args.batch, steps=args.steps,
                                       warmup=args.warmup, device=args.device,
                                       precision=precision)["images_per_second"])
        for name, form in {**train_forms, **compiled_forms, **(bf16_forms if with_bf16 else {})}.items():
            train[name].append(pytorch_train(batch=args.batch, steps=args.steps, warmup=args.warmup, device=device,
                                             **form))
        if with_bf16:
            matmul_bf16.append(matmul_gflops(device, dtype=torch.bfloat16))
        evals["trainer"].append(trainer("eval", args.threads, batch=args.eval_batch,
                                        images=args.eval_images, device=args.device)["seconds"])
        evals["pytorch no_grad"].append(pytorch_eval(args.eval_batch, args.eval_images, device))
        print(f"round {round_index + 1}/{args.rounds}: trainer {train['trainer'][-1]:.0f} images/s", file=sys.stderr)

    median = {name: statistics.median(values) for name, values in train.items()}
    best_name = max(train_forms, key=lambda name: median[name])
    peak = statistics.median(matmul)
    step_gflops = median["trainer"] * STEP_FLOP / 1e9
    eval_median = {name: statistics.median(values) for name, values in evals.items()}
    bf16 = {}
    if with_bf16:
        bf16_best = max(bf16_forms, key=lambda name: median[name])
        peak_bf16 = statistics.median(matmul_bf16)
        step_gflops_bf16 = median["trainer bf16"] * STEP_FLOP / 1e9
        bf16 = {
            "best_pytorch_bf16_form": bf16_best,
            "trainer_bf16_over_best_bf16": round(median["trainer bf16"] / median[bf16_best], 3),
            "trainer_bf16_over_idiomatic": round(median["trainer bf16"] / median["pytorch idiomatic"], 3),
            "trainer_bf16_over_best": round(median["trainer bf16"] / median[best_name], 3),
            "trainer_bf16_over_trainer": round(median["trainer bf16"] / median["trainer"], 3),
            "matmul_bf16_gflops": round(peak_bf16, 1), "step_bf16_gflops": round(step_gflops_bf16, 1),
            "step_bf16_fraction_of_matmul_bf16": round(step_gflops_bf16 / peak_bf16, 3),
        }

    heap = "glibc's defaults" if args.default_heap else "malloc thresholds pinned on both sides"
    print(f"\n{cpu_name()}; kind: {cpu_kind()}{isa_note(args.isa)}; torch {torch.__version__}; {heap}")
    print(f"training step on {args.device}, batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds:")
    for name, value in median.items():
        print(f"  {name:50s} {value:7.0f} images/s   trainer / this = {median['trainer'] / value:.2f}x")
    print(f"  torch.mm 2048x2048: {peak:.1f} GFLOP/s; the trainer's step: {step_gflops:.1f} GFLOP/s "
          f"= {100 * step_gflops / peak:.0f}% of it ({STEP_FLOP / 1e6:.1f} MFLOP per image)")
    if with_bf16:
        print(f"  torch.mm 2048x2048 in bf16: {peak_bf16:.1f} GFLOP/s; the trainer's bf16 step: "
              f"{step_gflops_bf16:.1f} GFLOP/s = {100 * step_gflops_bf16 / peak_bf16:.0f}% of it")
        print(f"  trainer bf16 / PyTorch's best bf16 form = {bf16['trainer_bf16_over_best_bf16']:.2f}x; "
              f"/ its best fp32 form = {bf16['trainer_bf16_over_best']:.2f}x; "
              f"/ idiomatic fp32 = {bf16['trainer_bf16_over_idiomatic']:.2f}x")
    print(f"evaluation of {args.eval_images} images, batch {args.eval_batch}:")
    for name, value in eval_median.items():
        print(f"  {name:50s} {value:7.3f} s")
    print(f"  pytorch / trainer = {eval_median['pytorch no_grad'] / eval_median['trainer']:.2f}x")
    print(json.dumps({
        "cpu": cpu_name(), "cpu_kind": cpu_kind(), "isa_cap": args.isa, "device": args.device, "threads": args.threads, "batch": args.batch,
        "torch": torch.__version__, "rounds": args.rounds, "heap": "default" if args.default_heap else "pinned",
        "train_images_per_second": {name: round(value, 1) for name, value in median.items()},
        "best_pytorch_form": best_name,
        "trainer_over_idiomatic": round(median["trainer"] / median["pytorch idiomatic"], 3),
        "trainer_over_best": round(median["trainer"] / median[best_name], 3),
        **({"trainer_over_compiled": round(median["trainer"] / median[next(iter(compiled_forms))], 3)}
           if compiled_forms else {}),
        "matmul_gflops": round(peak, 1), "step_gflops": round(step_gflops, 1),
        "step_fraction_of_matmul": round(step_gflops / peak, 3),
        "eval_seconds": {name: round(value, 3) for name, value in eval_median.items()},
        "eval_pytorch_over_trainer": round(eval_median["pytorch no_grad"] / eval_median["trainer"], 3),
        **bf16,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
