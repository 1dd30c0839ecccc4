"""What each augmentation pipeline adds to a training epoch, side by side on this machine.

The trainer trains one epoch on the same images with `--augment none`, then
each pipeline given, in alternating rounds; the time compared is the training
loop alone (`train_seconds`). Prints one JSON line per run, then the medians
and each pipeline's cost in percent of the epoch without augmentation.

    cargo build --release -p trainer
    python3 scripts/augment_cost.py --n-images 11000 --rounds 3 seed seed+elastic:34,4
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import run_trainer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipelines", nargs="+", help="--augment specs to measure against none")
    parser.add_argument("--n-images", type=int, default=11000, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="libtorch CPU threads")
    args = parser.parse_args()
    specs = ["none"] + args.pipelines
    runs = {spec: [] for spec in specs}
    for round_idx in range(args.rounds):
        for spec in specs:
            seconds = run_trainer(args.n_images, args.threads, spec)
            runs[spec].append(seconds)
            print(json.dumps({"round": round_idx, "augment": spec, "seconds": round(seconds, 2)}), flush=True)
    medians = {spec: statistics.median(values) for spec, values in runs.items()}
    print(json.dumps({
        "n_images": args.n_images,
        "threads": args.threads,
        "median_seconds": {spec: round(value, 2) for spec, value in medians.items()},
        "cost_percent": {spec: round(100 * (medians[spec] / medians["none"] - 1), 1) for spec in args.pipelines},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
