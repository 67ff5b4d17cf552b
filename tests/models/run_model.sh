#!/usr/bin/env bash
# tests/models/run_model.sh BITPIPEC COMPARE MODELS_DIR FAMILY VARIANT OUTDIR
# `bitpipec run` on a committed export must equal onnxruntime's output (max rel err <= 1e-4).
# The reference is the committed .npy; when onnxruntime is importable it is also recomputed here
# and must equal the committed one, so neither can drift silently.
set -euo pipefail
bitpipec=$1 compare=$2 models=$3 family=$4 variant=$5 out=$6
model=$models/$family/$variant.onnx
ref=$models/$family/$variant.logits.ort.npy
mkdir -p "$out"
"$bitpipec" run "$model" --input input_ids="$models/$family/input_ids.npy" --output-dir "$out" >/dev/null
"$compare" "$out/logits.npy" "$ref" --tol 1e-4 --label "$family/$variant vs onnxruntime"
if python3 -c "import onnxruntime, numpy" 2>/dev/null; then
  python3 "$models/make_reference.py" "$model" --input input_ids="$models/$family/input_ids.npy" --out-dir "$out/ort" >/dev/null
  "$compare" "$out/ort/logits.npy" "$ref" --tol 1e-6 --label "$family/$variant committed reference vs fresh onnxruntime"
else
  echo "onnxruntime not importable: compared with the committed reference only"
fi
