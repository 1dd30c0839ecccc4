#!/usr/bin/env bash
# Whether two runs with one thread each use a 2-core machine better than one
# run with two threads (for sweeps: `scripts/sweep_local.sh GRID DIR 2` gives
# each run one thread). One epoch of 22,000 images: one run with 2 threads,
# then two runs with 1 thread each at once; prints the training images per
# second of each way.
#
#   cargo build --release -p trainer
#   scripts/threads_or_runs.sh target/release/trainer OUT_DIR
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 TRAINER OUT_DIR (OUT_DIR must not exist)" >&2; exit 2; }
T=$1
out=$2
start=$(date +%s.%N)
NO_COLOR=1 $T --epochs 1 --train-images 22000 --threads 2 --save-dir "$out/two-threads" > /dev/null 2>&1
mid=$(date +%s.%N)
NO_COLOR=1 $T --epochs 1 --train-images 22000 --threads 1 --save-dir "$out/one-a" > /dev/null 2>&1 &
NO_COLOR=1 $T --epochs 1 --train-images 22000 --threads 1 --seed 1 --save-dir "$out/one-b" > /dev/null 2>&1 &
wait
end=$(date +%s.%N)
python3 - "$out" "$start" "$mid" "$end" <<'PY'
import json, sys
out, start, mid, end = sys.argv[1], *map(float, sys.argv[2:])
def train_seconds(name):
    return json.loads(open(f"{out}/{name}/metrics.jsonl").readline())["train_seconds"]
one = train_seconds("two-threads")
a, b = train_seconds("one-a"), train_seconds("one-b")
print(json.dumps({
    "one_run_2_threads": {"train_seconds": round(one, 2), "images_per_s": round(22000 / one), "wall_s": round(mid - start, 1)},
    "two_runs_1_thread": {"train_seconds": [round(a, 2), round(b, 2)], "images_per_s_total": round(2 * 22000 / max(a, b)), "wall_s": round(end - mid, 1)},
}))
PY
