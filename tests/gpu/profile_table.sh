#!/usr/bin/env bash
# tests/gpu/profile_table.sh BITPIPEC MODELS_DIR [MODEL] — GPT-2's layer costs profiled on the GPU
# (bitpipec partition --device-model gpu-profile, bf16 and fp32) next to the h100 analytic model's,
# and the partitions they choose. Fine layers (blocks split into attention and MLP halves),
# micro-batch 8 x sequence 64, D=4, N=8:
#   1. the layer table of each source (layer, fwd us, bwd us, memory);
#   2. per schedule (1f1b, bitpipe): the partition auto chooses with the h100 model, then the
#      candidates evaluated with the GPU's bf16 costs: auto (chosen with them), uniform, and the
#      h100 model's choice, so the step times compare under the measured costs.
# Printed, not checked (scripts/gpu-test.sh step 6; the checks are tests/gpu/test_gpu_profile*).
# MODEL: another ONNX file (e.g. the GPT-2 124M export of bench/gpt2_124m) at micro-batch 4 x
# sequence 1024, one layer per block, bf16 and h100 only. Exit 77 without a GPU.
set -uo pipefail
bitpipec=$1 models=$2 model=${3:-$2/gpt2/train.onnx}
shape=(--micro-batch 8 --bind sequence=64) layers=fine
srcs=("gpu-profile --precision bf16" "gpu-profile --precision fp32" "h100")
if [ $# -ge 3 ]; then
  shape=(--micro-batch 4 --bind sequence=1024) layers=block
  srcs=("gpu-profile --precision bf16" "h100")
fi
tmp=$(mktemp -d)
rc=0
part() { # SCHED DEVICE-MODEL-ARGS... : bitpipec partition's report
  local sched=$1
  shift
  "$bitpipec" partition "$model" -D 4 -N 8 --schedule "$sched" --layers $layers "${shape[@]}" \
    --profile-cache "$tmp/profiles.txt" --report "$@" 2>&1
}
for src in "${srcs[@]}"; do
  # shellcheck disable=SC2086
  out=$(part 1f1b --device-model $src) || rc=1
  if grep -q "no GPU is visible" <<<"$out"; then echo "skipped: no GPU"; rm -rf "$tmp"; exit 77; fi
  echo "---- layers of $model (micro-batch/sequence: ${shape[*]}), --device-model $src"
  grep -E "^costs|^bitpipec" <<<"$out"
  sed -n '/^  #  layer/,/^$/p' <<<"$out"
done
for sched in 1f1b bitpipe; do
  out=$(part $sched --device-model h100) || rc=1
  h100=$(awk '$1 == "auto" && $2 ~ /^[0-9.]+$/ { print $NF; exit }' <<<"$out")
  echo "---- $sched D=4 N=8: auto with the h100 model chooses $h100; under the GPU's bf16 costs:"
  out=$(part $sched --device-model gpu-profile --precision bf16 --partition auto --partition uniform \
    --partition "$h100") || rc=1
  sed -n '/^candidate/,/^$/p' <<<"$out" | sed "s/^manual2 /h100's  /" # the third candidate
  grep -E "^bitpipec" <<<"$out"
done
rm -rf "$tmp"
exit $rc
