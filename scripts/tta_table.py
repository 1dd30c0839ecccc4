"""Validation accuracy of each run of a sweep under several test-time view
specs (`trainer evaluate --tta SPEC`), each run on its own validation fold,
as a Markdown table: errors per run and in all, so that a spec is chosen on
validation before the test set is looked at. `--split test` gives the test
column for the specs already chosen.

    cargo build --release -p trainer
    python3 scripts/tta_table.py runs/strided-folds/strided-folds --specs none shift:1 rotate:10
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def holdout(run):
    """The run's validation fold and size, from its config.json."""
    with open(os.path.join(run, "config.json")) as file:
        recipe = json.load(file)["recipe"]
    return recipe.get("validation_fold", 0), recipe["validation_size"]


def evaluate(trainer, run, spec, split):
    fold, size = holdout(run)
    args = [trainer, "evaluate", "--json", "--device", "cpu", "--split", split, "--tta", spec]
    args += ["--checkpoint", os.path.join(run, "best.safetensors")]
    args += ["--validation-fold", str(fold), "--validation-size", str(size)]
    output = subprocess.run(args, check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    return json.loads(output.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder whose subfolders are runs with best.safetensors and config.json")
    parser.add_argument("--specs", nargs="+", default=["none", "shift:1", "diagonal:1", "rotate:10"])
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
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
    names = [os.path.basename(run) for run in runs]
    holdout_note = " (each run on its own validation fold)" if args.split == "validation" else ""
    print(f"{args.split} errors per run{holdout_note}\n")
    print("| views | " + " | ".join(names) + " | all runs | accuracy |")
    print("|---" * (len(names) + 3) + "|")
    for spec in args.specs:
        results = [evaluate(args.trainer, run, spec, args.split) for run in runs]
        errors = [result["n_images"] - result["n_correct"] for result in results]
        total = sum(result["n_images"] for result in results)
        accuracy = 1 - sum(errors) / total
        cells = " | ".join(str(count) for count in errors)
        print(f"| `{spec}` ({results[0]['n_views']}) | {cells} | {sum(errors)} of {total} | {accuracy:.5f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
