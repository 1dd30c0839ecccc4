"""Test accuracy of ensembles of 1, 2, ... N runs of a sweep: the first k runs
(in name order) answering with the mean of their probabilities, as a
Markdown table, with each run's own accuracy.

    cargo build --release -p trainer
    python3 scripts/ensemble_table.py runs/spread/seed-recipe
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def evaluate(trainer, checkpoints):
    args = [trainer, "evaluate", "--json", "--device", "cpu"]
    for checkpoint in checkpoints:
        args += ["--checkpoint", checkpoint]
    output = subprocess.run(args, check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    return json.loads(output.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder whose subfolders are runs with best.safetensors")
    parser.add_argument("--trainer", default=os.path.join(ROOT, "target/release/trainer"))
    args = parser.parse_args()
    runs = sorted(
        os.path.join(args.folder, name)
        for name in os.listdir(args.folder)
        if os.path.isfile(os.path.join(args.folder, name, "best.safetensors"))
    )
    if not runs:
        print(f"{args.folder}: no run with best.safetensors in it", file=sys.stderr)
        return 1
    checkpoints = [os.path.join(run, "best.safetensors") for run in runs]
    alone = evaluate(args.trainer, checkpoints)["members"] if len(runs) > 1 else []
    print("| runs | members | test accuracy | errors |")
    print("|---|---|---|---|")
    for k in range(1, len(runs) + 1):
        report = evaluate(args.trainer, checkpoints[:k])
        names = ", ".join(os.path.basename(run) for run in runs[:k])
        errors = report["n_images"] - report["n_correct"]
        print(f"| {k} | {names} | {report['accuracy']:.4f} | {errors} |", flush=True)
    if alone:
        print()
    for run, member in zip(runs, alone):
        print(f"{os.path.basename(run)} alone: {member['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
