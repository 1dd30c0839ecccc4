#!/usr/bin/env bash
# An A/B of two builds of the model crate's bench example (say, before and
# after a kernel change: copy the old build aside, rebuild), alternating
# ROUNDS times (default 5), 80 training steps each, then the medians and
# their ratio. Environment settings (BENCH_TAIL=..., see scripts/ab_bench.sh)
# apply to both sides.
#
#   cp target/release/examples/bench target/bench-before
#   (change the code) cargo build --release -p model --example bench
#   scripts/ab_binaries.sh target/bench-before target/release/examples/bench [ROUNDS] [-- BENCH_FLAGS...]
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 BEFORE AFTER [ROUNDS] [-- BENCH_FLAGS...]" >&2; exit 2; }
before=$1
after=$2
shift 2
rounds=5
if [[ $# -gt 0 && $1 != -- ]]; then rounds=$1; shift; fi
[[ $# -gt 0 && $1 == -- ]] && shift
for bench in "$before" "$after"; do
    [[ -x $bench ]] || { echo "$0: $bench is not an executable bench example" >&2; exit 1; }
done
rate() { "$1" train --steps 80 "${@:2}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_second"])'; }
before_rates=()
after_rates=()
for round in $(seq "$rounds"); do
    before_rates+=("$(rate "$before" "$@")")
    after_rates+=("$(rate "$after" "$@")")
    echo "round $round: before ${before_rates[-1]} images/s, after ${after_rates[-1]} images/s"
done
python3 - "${before_rates[*]}" "${after_rates[*]}" <<'PY'
import statistics, sys
before = statistics.median(float(x) for x in sys.argv[1].split())
after = statistics.median(float(x) for x in sys.argv[2].split())
print(f"medians: before {before:.0f} images/s, after {after:.0f} images/s; after / before = {after / before:.3f}x")
PY
