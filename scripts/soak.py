#!/usr/bin/env python3
"""Soak test of the run directory (not in CI): a short training is killed at
random moments with SIGKILL or SIGTERM and resumed each time with the same
command (`--resume` is always safe); after every kill each checkpoint must
load, and the run that finally completes must equal an uninterrupted one:
the same records (timings aside) and the same tensors in every checkpoint.

    cargo build --release -p trainer
    .libtorch/venv/bin/python scripts/soak.py [--kills 50] [--seed 1]

It prints one line per kill and a summary; docs/RELIABILITY.md records a run.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
RUN = [
    "--epochs", "3", "--save-step", "1", "--train-images", "1000", "--validation-size", "1000",
    "--train-accuracy-images", "200", "--eval-batch-size", "500", "--device", "cpu", "--threads", "2",
]
TIMINGS = {"seconds", "train_seconds", "images_per_second"}


def train(binary, save_dir, extra=(), **popen):
    env = dict(os.environ, NO_COLOR="1")
    env.pop("LD_LIBRARY_PATH", None)
    return subprocess.Popen([binary, "--save-dir", str(save_dir), *RUN, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def records(save_dir):
    lines = (save_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def checkpoints(save_dir):
    return sorted(p for p in save_dir.glob("*.safetensors") if not p.name.startswith("."))


def tensors(path):
    return load_file(str(path))


def same_tensors(left, right):
    a, b = tensors(left), tensors(right)
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary", default=str(ROOT / "target/release/trainer"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="soak-"))

    reference = work / "reference"
    started = time.monotonic()
    child = train(args.binary, reference)
    _, err = child.communicate()
    if child.returncode != 0:
        sys.exit(f"the uninterrupted run failed:\n{err}")
    duration = time.monotonic() - started
    print(f"uninterrupted run: {duration:.1f} s, {len(records(reference))} records")

    run = work / "soak"
    kills = {"KILL": 0, "TERM": 0}
    term_exits = {}
    finished_early = 0
    number = 0
    while number < args.kills:
        child = train(args.binary, run, ["--resume"])
        moment = rng.uniform(0.2, duration)
        name = rng.choice(["KILL", "TERM"])
        try:
            child.wait(timeout=moment)
            finished_early += 1
            print(f"        the run finished before {moment:.1f} s: starting over")
            for path in run.iterdir():
                path.unlink()
            continue
        except subprocess.TimeoutExpired:
            pass
        number += 1
        child.send_signal(getattr(signal, f"SIG{name}"))
        _, err = child.communicate()
        kills[name] += 1
        if name == "TERM":
            term_exits[child.returncode] = term_exits.get(child.returncode, 0) + 1
        files = checkpoints(run)
        for path in files:
            try:
                tensors(path)
            except Exception as error:  # noqa: BLE001 - any failure to load is the finding
                sys.exit(f"kill {number}: {path.name} does not load after SIG{name}: {error}")
        last = ""
        if (run / "last.safetensors").exists():
            with open(run / "last.safetensors", "rb") as f:
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
            last = f", last at epoch {header['epoch']} step {header['step']}"
        print(f"kill {number:2}: SIG{name} at {moment:4.1f} s, exit {child.returncode}, "
              f"{len(files)} checkpoints load{last}")

    child = train(args.binary, run, ["--resume"])
    _, err = child.communicate()
    if child.returncode != 0:
        sys.exit(f"the final resume failed:\n{err}")
    same_records = records(run) == records(reference)
    names = [p.name for p in checkpoints(reference)]
    same_files = [p.name for p in checkpoints(run)] == names
    differing = [name for name in names if same_files and not same_tensors(run / name, reference / name)]
    print(f"kills: {kills['KILL']} SIGKILL, {kills['TERM']} SIGTERM (exit codes {term_exits}); "
          f"{finished_early} runs finished before their kill")
    print(f"records equal the uninterrupted run's: {same_records}")
    print(f"checkpoints {names} present: {same_files}; tensors equal: {same_files and not differing} {differing}")
    if not (same_records and same_files and not differing):
        sys.exit(1)


if __name__ == "__main__":
    main()
