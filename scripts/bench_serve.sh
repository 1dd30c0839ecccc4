#!/usr/bin/env bash
# Load test of `trainer serve` on loopback: 100 concurrent clients posting
# 28x28 arrays for 10 s, against the server as it runs (dynamic batching)
# and against the same server answering one request per forward pass
# (--max-batch 1). Prints each run's JSON line and the throughput ratio.
#
#     scripts/bench_serve.sh CHECKPOINT [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=${1:?usage: scripts/bench_serve.sh CHECKPOINT [CLIENTS] [SECONDS]}
clients=${2:-100}
seconds=${3:-10}
cargo build -q --release -p trainer
cargo build -q --release -p serve --example load
runs=$(mktemp -d)
trap 'rm -rf "$runs"; kill $(jobs -p) 2>/dev/null || true' EXIT

measure() {  # $1: extra serve flags
    local out
    out=$(mktemp)
    # shellcheck disable=SC2086
    ./target/release/trainer serve --runs "$runs" --checkpoint "$checkpoint" --addr 127.0.0.1:0 --device cpu $1 >"$out" 2>/dev/null &
    local server=$!
    for _ in $(seq 100); do grep -q serving "$out" && break; sleep 0.1; done
    local url
    url=$(grep -o 'http://[0-9.:]*' "$out")
    ./target/release/examples/load "$url" "$clients" "$seconds"
    kill "$server"; wait "$server" 2>/dev/null || true
}

batched=$(measure "")
single=$(measure "--max-batch 1")
echo "dynamic batching:         $batched"
echo "one request per forward:  $single"
python3 -c "import json,sys; b,s=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(f'throughput ratio {b[\"requests_per_second\"]/s[\"requests_per_second\"]:.2f}x')" "$batched" "$single"
