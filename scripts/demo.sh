#!/usr/bin/env bash
# scripts/demo.sh — the main job on a bundled example, on the CPU: installs what is missing, builds,
# compiles the bundled GPT-2 export for 4 pipeline ranks with the BitPipe schedule, and trains it on
# a corpus every Debian machine has (the GPL-3 text, tokenized as bytes), printing the loss per step
# and the measured bubble per rank next to the plan's prediction. Writes, under out/demo/: the
# program (train, train.c, train.weights, train.plan.json), train.svg (the predicted timeline) and
# trace.json (what every rank really did; open it in https://ui.perfetto.dev).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
model=models/gpt2/train.onnx
out=out/demo
mkdir -p "$out"
echo "== bitpipec tokenize /usr/share/common-licenses/GPL-3 =="
build/tools/bitpipec tokenize /usr/share/common-licenses/GPL-3 -o "$out/gpl3.bin"
echo "== bitpipec $model -o $out/train -D 4 -N 8 --schedule bitpipe =="
build/tools/bitpipec "$model" -o "$out/train" -D 4 -N 8 --micro-batch 2 --seq 64 --schedule bitpipe \
  --optimizer adamw --lr 3e-3
echo "== mpirun -np 4 $out/train --data $out/gpl3.bin --steps 40 --trace $out/trace.json =="
# root (CI, containers) needs Open MPI's consent; --oversubscribe: 4 ranks on fewer cores is fine here
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 4 "$out/train" --data "$out/gpl3.bin" --steps 40 --trace "$out/trace.json"
echo "== wrote $out/train.svg (predicted timeline) and $out/trace.json (measured, Perfetto) =="
