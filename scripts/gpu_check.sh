#!/usr/bin/env bash
# One prepared device run: GPU tests, then the throughput benchmark at paper settings.
# Usage on the device machine: bash scripts/gpu_check.sh  (writes logs under $OUT if set)
set -uo pipefail
OUT="${OUT:-/tmp/acga-gpu}"; mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=disabled
nvidia-smi -L; python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py -o addopts="" -W ignore 2>&1 | tee "$OUT/gpu_tests.log"
timeout 150 python3 benchmarks/throughput.py --rows "plain fp32" "plain bf16" "optimised eager" 2>&1 | tee "$OUT/throughput_eager.md"
timeout ${COMPILE_TIMEOUT:-200} python3 benchmarks/throughput.py --rows "optimised" --steps 10 2>&1 | tee "$OUT/throughput_compiled.md"
