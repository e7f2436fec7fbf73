#!/usr/bin/env bash
# GPU checks of the language-model code, one CUDA device: about 5 minutes, plus the lm-arithmetic
# run of step 4 (not timed on a GPU yet).
#
#   bash scripts/gpu_checks.sh [OUT_DIR]
#
# 1. benchmarks/text_rollouts.py: batched vs one-at-a-time generation and judge batching, on
#    CUDA and on this machine's CPU (the baseline on the same machine), tiny and 6-layer models;
# 2. benchmarks/llm_trainers.py: seconds per self-play iteration, optimiser steps/s, and TRL's
#    DPOTrainer on the same pairs, on CUDA (tiny and 6-layer models) and CPU;
# 3. scripts/llm_distributed_check.py --device cuda: the trainer under `accelerate launch` on
#    the GPU ends with the weights of a single CPU process (floating-point differences only);
# 4. prefgym reproduce lm-arithmetic --budget gpu: SmolLM2-135M-Instruct + LoRA self-play on the
#    arithmetic word problems in bf16 (the whole train and held-out splits, 32 prompts x K=8 replies
#    of <= 128 tokens per iteration, 8 iterations, all six arms); needs the smollm2 extra. Its
#    numbers go beside the CPU ones in BENCHMARKS.md (lm-arithmetic). Not timed yet on a GPU.
# Each step's output goes to OUT_DIR/<step>.txt; a failing step does not stop the others.
set -uo pipefail
out=${1:-runs/gpu_checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
step() {  # step NAME CMD...: run, tee to OUT/NAME.txt, report the exit status
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$out/$name.txt"
  echo "=== $name: exit ${PIPESTATUS[0]} in $((SECONDS - t0)) s"
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())"
  python -c "import pyarrow, trl; print('pyarrow', pyarrow.__version__, 'trl', trl.__version__)"
  nproc
} 2>&1 | tee "$out/machine.txt"
big=(--n-layer 6 --n-embd 512)
step rollouts python benchmarks/text_rollouts.py --device cuda
step rollouts_big python benchmarks/text_rollouts.py --device cuda "${big[@]}" --n-head 8 --batch 64 \
  --new-tokens 64 --no-model-judge
step rollouts_big_cpu python benchmarks/text_rollouts.py --device cpu "${big[@]}" --n-head 8 --batch 64 \
  --new-tokens 64 --no-model-judge --repeats 1
step trainers python benchmarks/llm_trainers.py --device cuda
step trainers_big python benchmarks/llm_trainers.py --device cuda "${big[@]}" --prompts 32 --new-tokens 32 \
  --iterations 3 --dpo-steps 10
step trainers_big_cpu python benchmarks/llm_trainers.py --device cpu "${big[@]}" --prompts 32 --new-tokens 32 \
  --iterations 1 --dpo-steps 3 --threads "$(nproc)" --trainers omwu,dpo
step accelerate python scripts/llm_distributed_check.py --device cuda --processes 1 --out /tmp/prefgym_accel
step lm_arithmetic python -m prefgym reproduce lm-arithmetic --budget gpu --out "$out/lm_arithmetic" \
  --no-progress
