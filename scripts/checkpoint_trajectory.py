"""Test accuracy along each run's trajectory: every periodic checkpoint
(`net-N.safetensors`) from an epoch on, evaluated on a split, and each run's
mean over them, then each group's mean and spread of those means.

A run's reported test accuracy is that of one checkpoint, the one chosen on
validation; with 5,000 validation images the choice is noisy, and it moves
the test figure by several errors. The mean over a run's late checkpoints
reads the same run with less of that noise, so two recipes (or two kernels)
can be compared without more seeds. It is an analysis, never a selection:
nothing here chooses a checkpoint.

    cargo build --release -p trainer
    python3 scripts/checkpoint_trajectory.py --from-epoch 23 \\
        fused=runs/bf16-fused-seed3 composite=runs/bf16-composite-seed3
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERIODIC = re.compile(r"^net-(\d+)\.safetensors$")


def evaluate(trainer, checkpoint, split):
    args = [trainer, "evaluate", "--json", "--device", "cpu", "--split", split, "--checkpoint", checkpoint]
    output = subprocess.run(args, check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    return json.loads(output.stdout)["accuracy"]


def periodic_checkpoints(run, from_epoch):
    """(epoch, path) of every `net-N.safetensors` in `run` with N >= from_epoch, by epoch."""
    found = []
    for name in os.listdir(run):
        match = PERIODIC.match(name)
        if match and int(match.group(1)) >= from_epoch:
            found.append((int(match.group(1)), os.path.join(run, name)))
    return sorted(found)


def parse_run(argument):
    """`GROUP=DIR` or `DIR` (its own group)."""
    group, _, folder = argument.rpartition("=")
    return (group or folder), folder


def spread(values):
    mean = statistics.mean(values)
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.5f} ± {deviation:.5f} (n={len(values)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories, each optionally as GROUP=DIR")
    parser.add_argument("--from-epoch", type=int, default=23, help="the first periodic checkpoint's epoch to read")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--trainer", default=os.path.join(ROOT, "target/release/trainer"))
    args = parser.parse_args()
    groups = {}
    print(f"| group | run | {args.split} accuracy per checkpoint (epoch: accuracy) | mean |")
    print("|---|---|---|---|")
    for argument in args.runs:
        group, run = parse_run(argument)
        checkpoints = periodic_checkpoints(run, args.from_epoch)
        if not checkpoints:
            print(f"{run}: no net-N.safetensors with N >= {args.from_epoch}", file=sys.stderr)
            return 1
        scores = [(epoch, evaluate(args.trainer, path, args.split)) for epoch, path in checkpoints]
        mean = statistics.mean(score for _, score in scores)
        groups.setdefault(group, []).append(mean)
        listing = ", ".join(f"{epoch}: {score:.4f}" for epoch, score in scores)
        print(f"| {group} | {os.path.basename(os.path.normpath(run))} | {listing} | {mean:.5f} |", flush=True)
    print()
    print("| group | mean of the runs' means ± standard deviation |")
    print("|---|---|")
    for group, means in groups.items():
        print(f"| {group} | {spread(means)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
