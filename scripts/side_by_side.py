"""Seconds per training epoch, side by side on this machine, in alternating rounds:

- the faithful PyTorch + scipy version of the seed's loop (scripts/seed_pytorch_baseline.py),
- the trainer with the seed's augmentation (`--augment seed`),
- the trainer without augmentation (`--augment none`), to show what augmentation adds.

Each run trains one epoch on the same number of training images, all with the
same libtorch thread count; the time compared is the training loop alone
(validation and test evaluation excluded from both sides). Prints one JSON
line per run, then the medians and the ratios.

    cargo build --release -p trainer
    .libtorch/venv/bin/pip install scipy numpy        # for the baseline
    .libtorch/venv/bin/python scripts/side_by_side.py --n-images 11000 --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_baseline(n_images, threads):
    output = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts/seed_pytorch_baseline.py"), "--epochs", "1",
         "--limit-train", str(n_images), "--threads", str(threads)],
        check=True, capture_output=True, text=True).stdout
    epoch = json.loads(output.splitlines()[0])
    return epoch["seconds"]


def run_trainer(n_images, threads, augment):
    with tempfile.TemporaryDirectory() as save_dir:
        subprocess.run(
            [os.path.join(ROOT, "target/release/trainer"), "--epochs", "1", "--train-images", str(n_images),
             "--augment", augment, "--threads", str(threads), "--device", "cpu", "--save-dir", save_dir],
            check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
        with open(os.path.join(save_dir, "metrics.jsonl")) as metrics:
            return json.loads(metrics.readline())["train_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=11000, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="libtorch CPU threads on both sides")
    args = parser.parse_args()
    runs = {"pytorch_scipy": [], "trainer_seed": [], "trainer_none": []}
    for round_idx in range(args.rounds):
        for name, measure in (("pytorch_scipy", lambda: run_baseline(args.n_images, args.threads)),
                              ("trainer_seed", lambda: run_trainer(args.n_images, args.threads, "seed")),
                              ("trainer_none", lambda: run_trainer(args.n_images, args.threads, "none"))):
            seconds = measure()
            runs[name].append(seconds)
            print(json.dumps({"round": round_idx, "run": name, "seconds": round(seconds, 2)}), flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    per_epoch = {name: round(median * 55000 / args.n_images, 1) for name, median in medians.items()}
    print(json.dumps({
        "n_images": args.n_images,
        "threads": args.threads,
        "median_seconds": {name: round(value, 2) for name, value in medians.items()},
        "seconds_per_55000_image_epoch": per_epoch,
        "speedup_vs_pytorch_scipy": round(medians["pytorch_scipy"] / medians["trainer_seed"], 2),
        "augmentation_overhead_percent": round(100 * (medians["trainer_seed"] / medians["trainer_none"] - 1), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
