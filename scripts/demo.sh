#!/usr/bin/env bash
# scripts/demo.sh — the main job on a bundled example: installs what is missing, builds, inspects
# the bundled GPT-2 export and runs its forward pass on the CPU (later: compile and train it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
model=models/gpt2/train.onnx
echo "== bitpipec inspect $model --bind batch=2 --bind sequence=16 =="
build/tools/bitpipec inspect "$model" --bind batch=2 --bind sequence=16
echo "== bitpipec run $model =="
mkdir -p out/demo
build/tools/bitpipec run "$model" --input input_ids=models/gpt2/input_ids.npy --output-dir out/demo
build/tests/models/bp_npy_compare out/demo/logits.npy models/gpt2/train.logits.ort.npy --tol 1e-4
