#!/usr/bin/env bash
# Submits a sweep to Slurm: an array of one task per run (sweep.sbatch) and
# its summary once the array has ended (summary.sbatch). Prints both job ids.
#
#   scripts/slurm/submit.sh GRID SWEEP_DIR [SBATCH_OPTIONS...] [-- TRAIN_FLAGS...]
#
# SBATCH_OPTIONS go to the array (`--partition=gpu --gres=gpu:1`,
# `--time=04:00:00`, `--cpus-per-task=4`); TRAIN_FLAGS to every run
# (`--device cuda`). TRAINER names the binary (default: target/release/trainer
# of this checkout); the sweep folder must be on a file system every node sees.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 GRID SWEEP_DIR [SBATCH_OPTIONS...] [-- TRAIN_FLAGS...]" >&2; exit 2; }
grid=$(realpath "$1")
sweep=$(realpath -m "$2")
shift 2
options=()
while [[ $# -gt 0 && $1 != -- ]]; do options+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
here=$(cd "$(dirname "$0")" && pwd)
export TRAINER=${TRAINER:-$(realpath "$here/../../target/release/trainer")}
[[ -x $TRAINER ]] || { echo "$0: $TRAINER is missing: build it (cargo build --release -p trainer) or set TRAINER" >&2; exit 1; }
n_tasks=$("$TRAINER" sweep plan --grid "$grid" --count)
mkdir -p "$sweep/logs"
array=$(sbatch --parsable --array="0-$((n_tasks - 1))" --output="$sweep/logs/%A_%a.out" "${options[@]}" \
    "$here/sweep.sbatch" "$grid" "$sweep" "$@")
array=${array%%;*}
summary=$(sbatch --parsable --dependency="afterany:$array" --output="$sweep/logs/summary-%j.out" \
    "$here/summary.sbatch" "$sweep")
echo "array job $array ($n_tasks tasks), summary job ${summary%%;*}"
