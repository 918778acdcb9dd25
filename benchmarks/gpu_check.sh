#!/usr/bin/env bash
# Every GPU check of the batched engine in one run (target: under 8 minutes on one H200).
#   bash benchmarks/gpu_check.sh [DEVICE]        # DEVICE: cuda (default) or cpu, to try the script
# Writes $OUT (or runs/gpu_check) /probe.json and /throughput.json and prints both.
set -euo pipefail
device="${1:-cuda}"
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # no network there: use the checkout as is
    batches=1,64,256,1024; small=""
else
    batches=1,8; small="--min-chains 4"
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# 1. dtype, attention kernels, xformers, compile probe
timeout 180 python benchmarks/gpu_probe.py --device "$device" --out "$out/probe.json" || echo "probe: exit $?"
# 2. throughput: full loop on maze 6 (4 denoising steps, the bundle's default) and decoder alone
timeout 300 python benchmarks/throughput.py --device "$device" --sizes 6 --batches "$batches" \
    --sketchers oracle,default $small --out "$out/throughput.json" || echo "throughput: exit $?"
cat "$out/probe.json" "$out/throughput.json" 2>/dev/null || true
