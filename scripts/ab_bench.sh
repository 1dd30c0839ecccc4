#!/usr/bin/env bash
# An A/B of the model crate's training step: the bench example with one
# environment setting against another, alternating ROUNDS times (default 5),
# 80 steps each, then the medians and their ratio. The settings the example
# reads: BENCH_TAIL=fused or BENCH_TAIL=composite (batch norm, pooling and
# leaky ReLU as one fused node or as ATen's three calls; unset, as the
# trainer's default: fused in bf16 only), BENCH_ADAM=composite (Adam as tensor
# operations instead of ATen's fused kernel), BENCH_HEAP=default (glibc's
# malloc thresholds left at their defaults instead of pinned), BENCH_SHADOW=off
# (the bf16 step casts the dense weights every step instead of computing
# with the optimizer's bf16 shadows of them; pass `-- --precision bf16`).
#
#   cargo build --release -p model --example bench
#   scripts/ab_bench.sh A_SETTING B_SETTING [ROUNDS] [-- BENCH_FLAGS...]
#   scripts/ab_bench.sh BENCH_TAIL=fused BENCH_TAIL=composite 5 -- --network vgg
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 A_SETTING B_SETTING [ROUNDS] [-- BENCH_FLAGS...]" >&2; exit 2; }
a=$1
b=$2
shift 2
rounds=5
if [[ $# -gt 0 && $1 != -- ]]; then rounds=$1; shift; fi
[[ $# -gt 0 && $1 == -- ]] && shift
bench=$(cd "$(dirname "$0")/.." && pwd)/target/release/examples/bench
[[ -x $bench ]] || { echo "$0: $bench is missing: cargo build --release -p model --example bench" >&2; exit 1; }
rate() { env "$1" "$bench" train --steps 80 "${@:2}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_second"])'; }
a_rates=()
b_rates=()
for round in $(seq "$rounds"); do
    a_rates+=("$(rate "$a" "$@")")
    b_rates+=("$(rate "$b" "$@")")
    echo "round $round: $a ${a_rates[-1]} images/s, $b ${b_rates[-1]} images/s"
done
python3 - "$a" "$b" "${a_rates[*]}" "${b_rates[*]}" <<'PY'
import statistics, sys
a, b = sys.argv[1], sys.argv[2]
a_median = statistics.median(map(float, sys.argv[3].split()))
b_median = statistics.median(map(float, sys.argv[4].split()))
print(f"medians: {a} {a_median:.0f} images/s, {b} {b_median:.0f} images/s; {a} / {b} = {a_median / b_median:.3f}x")
PY
