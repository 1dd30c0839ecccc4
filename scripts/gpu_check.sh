#!/usr/bin/env bash
# The CUDA path on a GPU machine that has PyTorch but no Rust: run from a
# checkout that carries prebuilt release binaries (build them elsewhere:
#   cargo build --release -p trainer && cargo build --release -p model --example bench
# then copy the checkout, target/release/trainer and
# target/release/examples/bench included).
#
#   TORCH_LIB=/opt/torch/.venv/lib/python3.11/site-packages/torch/lib \
#   PYTHON=/opt/torch/.venv/bin/python scripts/gpu_check.sh [OUT_DIR]
#
# It checks, in order, and stops at the first failure:
#   1. the trainer trains 2 epochs on cuda:0, and nvidia-smi shows its process
#      holding GPU memory while it does (no silent CPU fallback; the trainer
#      itself refuses `--device cuda` without a usable GPU);
#   2. the test accuracy is within 0.5 points of a CPU run of the same seed
#      (CUDA's kernels round differently, so the runs are not bit-equal);
#   3. the training step and evaluation against PyTorch on the same GPU
#      (scripts/bench_step.py --device cuda), printed as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-gpu-check}
TORCH_LIB=${TORCH_LIB:?set TORCH_LIB to the lib/ folder of the machine\'s torch (it holds libtorch_cuda.so)}
PYTHON=${PYTHON:-python3}
TRAINER=target/release/trainer
BENCH=target/release/examples/bench
for file in "$TRAINER" "$BENCH" "$TORCH_LIB/libtorch_cuda.so"; do
  [[ -e $file ]] || { echo "gpu_check: $file is missing" >&2; exit 1; }
done
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi is not on PATH: is this a GPU machine?" >&2; exit 1; }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"
EPOCHS=(--epochs 2 --seed 0)

echo "== 1. two epochs on cuda:0"
"$TRAINER" "${EPOCHS[@]}" --device cuda:0 --save-dir "$OUT/cuda" >"$OUT/cuda.stdout" 2>"$OUT/cuda.log" &
pid=$!
seen=0
while kill -0 "$pid" 2>/dev/null; do
  if nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' -v pid="$pid" '$1 == pid && $2 > 100 {found = 1} END {exit !found}'; then
    seen=1
  fi
  sleep 2
done
wait "$pid" || { echo "gpu_check: the CUDA run failed: see $OUT/cuda.log" >&2; tail -5 "$OUT/cuda.log" >&2; exit 1; }
grep -q '"device": "cuda' "$OUT/cuda/config.json" || { echo "gpu_check: config.json does not record a CUDA device" >&2; exit 1; }
(( seen )) || { echo "gpu_check: nvidia-smi never showed the trainer (pid $pid) holding GPU memory" >&2; exit 1; }
echo "the trainer ran on the GPU (nvidia-smi saw pid $pid)"

echo "== 2. the same two epochs on the CPU"
"$TRAINER" "${EPOCHS[@]}" --device cpu --save-dir "$OUT/cpu" >"$OUT/cpu.stdout" 2>"$OUT/cpu.log"
"$PYTHON" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def read(run):
    records = [json.loads(line) for line in open(f"{out}/{run}/metrics.jsonl")]
    test = next(r["test"] for r in records if "test" in r)
    epochs = [r for r in records if "epoch" in r]
    return test["accuracy"], [round(r["train_seconds"], 1) for r in epochs]
cuda, cuda_seconds = read("cuda")
cpu, cpu_seconds = read("cpu")
print(f"test accuracy: cuda {cuda:.4f}, cpu {cpu:.4f}; seconds per epoch: cuda {cuda_seconds}, cpu {cpu_seconds}")
if abs(cuda - cpu) > 0.005:
    sys.exit(f"gpu_check: CUDA and CPU test accuracies differ by more than 0.5 points: {cuda} against {cpu}")
PY

echo "== 3. the training step and evaluation against PyTorch on the same GPU"
"$PYTHON" scripts/bench_step.py --device cuda --rounds 3 | tee "$OUT/bench_step.txt"
