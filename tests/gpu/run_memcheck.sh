#!/usr/bin/env bash
# tests/gpu/run_memcheck.sh GPU_PROBE BITPIPEC MODELS_DIR — compute-sanitizer's memcheck (with leak
# checking) on one GPU training step of GPT-2 (AdamW) and of Llama (SGD): no invalid access, no
# leaked device allocation, no CUDA API error; and on the layer-cost profile on the GPU
# (bitpipec partition --device-model gpu-profile, kernels/cuda/layer_profile.c). Exits 77 without a
# GPU or without compute-sanitizer.
set -u
probe=$1 bitpipec=$2 models=$3
"$probe" >/dev/null || { echo "skipped: no GPU"; exit 77; }
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
[ -x "$cs" ] || { echo "skipped: compute-sanitizer not found"; exit 77; }
rc=0
for run in "gpt2 adamw" "llama sgd"; do
  set -- $run
  echo "== compute-sanitizer --tool memcheck: one step of $1 ($2) on the GPU"
  "$cs" --tool memcheck --leak-check full --error-exitcode 3 \
    "$bitpipec" train "$models/$1/train.onnx" --input "input_ids=$models/$1/input_ids.npy" \
    --targets "$models/$1/targets.npy" --steps 1 --optimizer "$2" --no-dropout --device cuda || rc=1
done
echo "== compute-sanitizer --tool memcheck: bitpipec partition gpt2 --device-model gpu-profile (bf16, 2 repeats)"
"$cs" --tool memcheck --leak-check full --error-exitcode 3 \
  "$bitpipec" partition "$models/gpt2/train.onnx" -D 2 -N 4 --schedule 1f1b --bind sequence=16 \
  --device-model gpu-profile --precision bf16 --repeats 2 --no-cache || rc=1
[ $rc = 0 ] && echo "memcheck: clean" || echo "memcheck: FAILED"
exit $rc
