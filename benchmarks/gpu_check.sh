#!/usr/bin/env bash
# The GPU check of the training path, prepared to run in one go (~8 minutes on one H100/H200):
#   1. benchmarks/train_throughput.py at 7b scale: gaptune's path against a plain
#      Trainer + PEFT (batch 32, 30 timed steps after 5 warm-up), then each candidate kind;
#   2. the tests marked `gpu` (skipped on a machine without CUDA).
# Outputs go to $OUT (default benchmarks/out): train_throughput.md/.json, gpu_tests.txt.
#
# Usage: benchmarks/gpu_check.sh [--size 7b|tiny] [--batch 32] [--steps 30] [--warmup 5]
#                                [--kind-steps 10] [--skip-tests]
# Run from anywhere with the repository's venv (.venv) in place, or set PYTHON.
set -euo pipefail

size=7b batch=32 steps=30 warmup=5 kind_steps=10 run_tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --kind-steps) kind_steps="$2"; shift 2 ;;
    --skip-tests) run_tests=0; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
out="${OUT:-$repo/benchmarks/out}"
mkdir -p "$out"

"$python" -c 'import torch; print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' \
  | tee "$out/device.txt"

"$python" benchmarks/train_throughput.py --size "$size" --batch "$batch" --steps "$steps" --warmup "$warmup" \
  --kind-steps "$kind_steps" --json "$out/train_throughput.json" | tee "$out/train_throughput.md"

if [ "$run_tests" = 1 ]; then
  "$python" -m pytest -q -m gpu tests/training/test_trainer.py tests/training/test_train_throughput.py 2>&1 | tee "$out/gpu_tests.txt"
fi
