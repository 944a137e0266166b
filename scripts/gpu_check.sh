#!/usr/bin/env bash
# One prepared GPU check (meant for one H100/H200, under 10 minutes): the benchmark at full size
# on CUDA (eager and compiled, fp32 and bf16), the 512-channel sweep of inception4c, a
# 4096x4096 dream, the video case (stability and frames/s), the atlas case (500 photos), and the CUDA tests; prints one table per run and leaves the JSON in $OUT
# (default ./gpu_check). Needs the weights: DREAMKIT_WEIGHTS (default ../shared/weights).
set -uo pipefail
cd "$(dirname "$0")/.."
export DREAMKIT_WEIGHTS="${DREAMKIT_WEIGHTS:-../shared/weights}"
OUT="${OUT:-gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
run() {  # name, then bench.py arguments
  local name=$1; shift
  echo "== $name: scripts/bench.py $*"
  timeout 300 "$PY" scripts/bench.py --device cuda "$@" -o "$OUT/$name.json" || status=1
}
run main --cases acdg --precisions fp32,bf16 --repeats 3
run sweep --cases h --channels 512 --vis-steps 512 --vis-size 128
run big --cases i
run video --cases v
run atlas --cases t
echo "== CUDA tests"
timeout 300 "$PY" -m pytest -q tests/test_cuda.py tests/test_compile.py tests/test_precision.py \
  tests/test_gradients.py | tail -5 || status=1
exit $status
