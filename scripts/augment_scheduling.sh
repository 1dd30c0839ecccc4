#!/usr/bin/env bash
# Whether the augmentation producer's scheduling changes what elastic
# distortions cost an epoch on a machine whose cores libtorch fills: one
# epoch of N training images (default 22000) with `--augment none`, then
# `seed+elastic:34,4` as it runs, with its producer thread moved to Linux's
# SCHED_IDLE (`chrt -i`) while it runs, under libgomp's passive waiting
# (OMP_WAIT_POLICY=PASSIVE) and with a shorter spin (GOMP_SPINCOUNT=20000),
# ROUNDS alternating rounds (default 3). Prints each run's training-loop
# seconds (config `train_seconds`), then the medians.
#
#   cargo build --release -p trainer
#   scripts/augment_scheduling.sh [ROUNDS] [N]
set -euo pipefail
rounds=${1:-3}
n_images=${2:-22000}
repository=$(cd "$(dirname "$0")/.." && pwd)
trainer=$repository/target/release/trainer
[[ -x $trainer ]] || { echo "$0: $trainer is missing: cargo build --release -p trainer" >&2; exit 1; }
command -v chrt >/dev/null || { echo "$0: chrt (util-linux) is missing" >&2; exit 1; }

# train_seconds of one epoch: AUGMENT, then `idle` or `normal` for the producer's policy.
one_epoch() {
    local dir pid task
    dir=$(mktemp -d)
    NO_COLOR=1 "$trainer" --epochs 1 --train-images "$n_images" --augment "$1" --device cpu \
        --save-dir "$dir" >"$dir/log.txt" 2>&1 &
    pid=$!
    while [[ $2 == idle ]] && kill -0 "$pid" 2>/dev/null; do
        for task in /proc/"$pid"/task/*; do
            if grep -q '^augment-epoch' "$task/comm" 2>/dev/null; then chrt -i -p 0 "${task##*/}" 2>/dev/null || true; fi
        done
        sleep 0.05
    done
    wait "$pid" || { cat "$dir/log.txt" >&2; exit 1; }
    python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["train_seconds"])' "$dir/metrics.jsonl"
    rm -rf "$dir"
}

variants=("none normal" "seed+elastic:34,4 normal" "seed+elastic:34,4 idle"
          "OMP_WAIT_POLICY=PASSIVE seed+elastic:34,4 normal" "GOMP_SPINCOUNT=20000 seed+elastic:34,4 normal")
results=$(mktemp)
for round in $(seq "$rounds"); do
    for variant in "${variants[@]}"; do
        read -r -a words <<<"$variant"
        if [[ ${words[0]} == *=* ]]; then
            seconds=$(export "${words[0]}"; one_epoch "${words[1]}" "${words[2]}")
        else
            seconds=$(one_epoch "${words[0]}" "${words[1]}")
        fi
        echo "round $round: $variant: $seconds s"
        echo "$variant	$seconds" >>"$results"
    done
done
python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    variant, seconds = line.rstrip("\n").split("\t")
    runs.setdefault(variant, []).append(float(seconds))
base = statistics.median(runs["none normal"])
for variant, values in runs.items():
    median = statistics.median(values)
    print(f"{variant:<50} median {median:6.2f} s  {100 * (median / base - 1):+5.1f}% against none")
PY
rm -f "$results"
