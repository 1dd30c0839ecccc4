"""Copies a sweep's results into the repository: for every run, its
`config.json`, `metrics.jsonl`, `status.json`, its part of the task logs
(progress lines left out) as `log.txt`, and the report's pictures; never a
checkpoint. Then `runs.txt` (`trainer runs`) and `curves.png`.

    cargo build --release -p trainer
    python3 scripts/collect_runs.py runs/strong docs/results/strong [--report]

A task log (SWEEP/logs/task-N.log) may hold several runs (a task index
reused by another grid, or a resumed task): each part starts at the line
`sweep task N of M: RECIPE with seed S`.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = re.compile(r"sweep task \d+ of \d+: (\S+) with seed (\d+)")
RUN_FILES = ["config.json", "metrics.jsonl", "status.json"]
PICTURES = ["curves.png", "confusion.png", "misclassified.png"]


def logs_by_run(sweep):
    """Each run's log lines (`RECIPE/seed-S` -> lines), progress lines left out."""
    parts = {}
    logs = os.path.join(sweep, "logs")
    for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        current = None
        for line in open(os.path.join(logs, name), errors="replace"):
            found = HEADER.search(line)
            if found:
                current = f"{found.group(1)}/seed-{found.group(2)}"
            if current is not None and "trainer::console" not in line:
                parts.setdefault(current, []).append(line)
    return parts


def runs_of(sweep):
    for recipe in sorted(os.listdir(sweep)):
        for run in sorted(os.listdir(os.path.join(sweep, recipe))) if os.path.isdir(os.path.join(sweep, recipe)) else []:
            if os.path.exists(os.path.join(sweep, recipe, run, "config.json")):
                yield f"{recipe}/{run}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep folder (SWEEP/RECIPE/seed-N)")
    parser.add_argument("dest", help="where to copy (created)")
    parser.add_argument("--report", action="store_true", help="run `trainer report` on each run for its pictures")
    parser.add_argument("--trainer", default=os.path.join(ROOT, "target/release/trainer"))
    args = parser.parse_args()
    logs = logs_by_run(args.sweep)
    env = {**os.environ, "NO_COLOR": "1"}
    for run in runs_of(args.sweep):
        source, dest = os.path.join(args.sweep, run), os.path.join(args.dest, run)
        os.makedirs(dest, exist_ok=True)
        for name in RUN_FILES:
            if os.path.exists(os.path.join(source, name)):
                shutil.copy(os.path.join(source, name), dest)
        if run in logs:
            with open(os.path.join(dest, "log.txt"), "w") as out:
                out.writelines(logs[run])
        if args.report:
            subprocess.run([args.trainer, "report", "--save-dir", source], check=True, capture_output=True, env=env)
            os.makedirs(os.path.join(dest, "report"), exist_ok=True)
            for picture in PICTURES:
                if os.path.exists(os.path.join(source, "report", picture)):
                    shutil.copy(os.path.join(source, "report", picture), os.path.join(dest, "report"))
        print(run, file=sys.stderr)
    table = subprocess.run([args.trainer, "runs", args.sweep, "--curves", os.path.join(args.dest, "curves.png")],
                           check=True, capture_output=True, text=True, env=env).stdout
    with open(os.path.join(args.dest, "runs.txt"), "w") as out:
        out.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
