"""Summarizes a run's metrics.jsonl: the figures the README quotes.

    python3 scripts/summarize_run.py docs/results/mnist-50-epochs-cpu/metrics.jsonl

Prints one JSON object: epochs, best epoch and its validation accuracy, test
accuracy of the restored best checkpoint, and seconds per epoch (median and
mean, whole epoch and training steps alone).
"""
import json
import statistics
import sys


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    epochs, test = [], None
    with open(sys.argv[1]) as metrics:
        for line in metrics:
            record = json.loads(line)
            if "test" in record:
                test = record["test"]
            else:
                epochs.append(record)
    if not epochs:
        print(f"{sys.argv[1]}: no epoch records", file=sys.stderr)
        return 1
    best = max(epochs, key=lambda record: (record["validation_accuracy"], -record["epoch"]))
    seconds = [record["seconds"] for record in epochs]
    train_seconds = [record["train_seconds"] for record in epochs]
    print(json.dumps({
        "n_epochs": len(epochs),
        "best_epoch": best["epoch"],
        "best_validation_accuracy": best["validation_accuracy"],
        "final_validation_accuracy": epochs[-1]["validation_accuracy"],
        "final_loss": epochs[-1]["loss"],
        "test_accuracy": test and test["accuracy"],
        "test_n_correct": test and test["n_correct"],
        "test_checkpoint_epoch": test and test["best_epoch"],
        "seconds_per_epoch_median": round(statistics.median(seconds), 1),
        "seconds_per_epoch_mean": round(statistics.mean(seconds), 1),
        "train_seconds_per_epoch_median": round(statistics.median(train_seconds), 1),
        "images_per_second_median": round(statistics.median(record["images_per_second"] for record in epochs)),
        "total_hours": round(sum(seconds) / 3600, 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
