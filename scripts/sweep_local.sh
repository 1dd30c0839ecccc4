#!/usr/bin/env bash
# A sweep on this machine, JOBS runs at a time: the same folder layout as the
# Slurm scripts (SWEEP_DIR/RECIPE/seed-SEED, logs in SWEEP_DIR/logs), then
# the summary (`trainer runs`). Run it again to continue: every task resumes
# its run, and finished runs are skipped. Ctrl-C or SIGTERM to this script
# stops every run after a step, saved, and starts no other (docs/CLUSTER.md).
#
#   scripts/sweep_local.sh GRID SWEEP_DIR [JOBS] [-- TRAIN_FLAGS...]
#
# TRAINER names the binary (default: target/release/trainer of this
# checkout); each run gets `--threads` = cores / JOBS unless TRAIN_FLAGS set it.
set -euo pipefail

usage() { echo "usage: $0 GRID SWEEP_DIR [JOBS] [-- TRAIN_FLAGS...]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
grid=$1
sweep=$2
shift 2
jobs=1
if [[ $# -gt 0 && $1 != -- ]]; then
    jobs=$1
    shift
fi
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "$0: JOBS must be a whole number of at least 1, found '$jobs'" >&2; exit 2; }
[[ $# -eq 0 || $1 == -- ]] || usage
[[ $# -gt 0 ]] && shift
extra=("$@")

repository=$(cd "$(dirname "$0")/.." && pwd)
trainer=${TRAINER:-$repository/target/release/trainer}
[[ -x $trainer ]] || { echo "$0: $trainer is missing: build it (cargo build --release -p trainer) or set TRAINER" >&2; exit 1; }
threads=$(( $(nproc) / jobs ))
(( threads >= 1 )) || threads=1
if [[ " ${extra[*]-} " == *" --threads "* ]]; then thread_flags=(); else thread_flags=(--threads "$threads"); fi

n_tasks=$("$trainer" sweep plan --grid "$grid" --count)
mkdir -p "$sweep/logs"
echo "sweep $sweep: $n_tasks runs of $grid, $jobs at a time (logs in $sweep/logs)"

# `exec`: the background job is the trainer itself, so a signal forwarded to
# the jobs reaches the runs, not shells that would die and leave them going.
run_task() {
    exec "$trainer" sweep task --grid "$grid" --index "$1" --sweep-dir "$sweep" -- "${thread_flags[@]}" "${extra[@]}" \
        >> "$sweep/logs/task-$1.log" 2>&1
}

# SIGTERM or SIGINT (`kill`, Ctrl-C, a job scheduler) stops the sweep: no
# new task starts, the running ones get SIGTERM and save after their step.
stopping=0
stop() {
    stopping=1
    kill -TERM $(jobs -rp) 2> /dev/null || true
}
trap stop INT TERM

failed=0
for (( index = 0; index < n_tasks; index++ )); do
    while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || failed=$((failed + 1)); done
    (( stopping )) && break
    run_task "$index" &
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n || failed=$((failed + 1)); done

"$trainer" runs "$sweep"
if (( stopping )); then
    echo "$0: stopped by a signal; the runs saved: run the same command again to continue" >&2
    exit 143
fi
if (( failed > 0 )); then
    echo "$0: $failed of $n_tasks tasks failed: see $sweep/logs/ and the table above" >&2
    exit 1
fi
