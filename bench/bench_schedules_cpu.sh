#!/usr/bin/env bash
# bench/bench_schedules_cpu.sh [BUILD] [D] [STEPS] — every schedule compiled for the bundled GPT-2
# (costs profiled on this CPU, automatic partition) and trained with mpirun -np D on the GPL-3 text:
# one table row per schedule with the plan's predicted step time and mean bubble next to the
# measured ones (./train's summary: the slowest rank's mean step, 1 - busy/step per rank). A
# benchmark, not a test: the figures depend on the machine and its load (ranks beyond the core
# count share cores, which the measured bubble includes).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; D=${2:-2}; steps=${3:-12}
bp=$build/tools/bitpipec
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$bp" tokenize /usr/share/common-licenses/GPL-3 -o "$work/gpl3.bin" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
printf "GPT-2 (models/gpt2/train.onnx), D=%d, N=8, micro-batch 2 x 64 tokens, %d steps, %d cores\n" "$D" "$steps" "$(nproc)"
printf "%-15s %12s %12s %12s %12s\n" schedule "pred ms" "meas ms" "pred bubble" "meas bubble"
for s in gpipe 1f1b interleaved chimera bitpipe bitpipe-steady zb-h1 zb-v; do
  if ! "$bp" models/gpt2/train.onnx -o "$work/t_$s" -D "$D" -N 8 --micro-batch 2 --seq 64 --schedule "$s" \
       --optimizer adamw --lr 3e-3 --no-dropout >"$work/c_$s.log" 2>&1; then
    printf "%-15s %s\n" "$s" "compile failed: $(head -1 "$work/c_$s.log")"; continue
  fi
  mpirun --oversubscribe -np "$D" "$work/t_$s" --data "$work/gpl3.bin" --steps "$steps" >"$work/r_$s.log" 2>&1 || {
    printf "%-15s %s\n" "$s" "run failed: $(tail -1 "$work/r_$s.log")"; continue; }
  python3 - "$s" "$work/r_$s.log" <<'PY'
import re, sys
s, text = sys.argv[1], open(sys.argv[2]).read()
m = re.search(r"step time\s+([\d.]+) ms .*?predicted ([\d.]+) ms", text)
b = re.search(r"^\s*mean\s+([\d.]+)\s+([\d.]+)\s*$", text, re.M)
print(f"{s:15s} {float(m.group(2)):12.2f} {float(m.group(1)):12.2f} {float(b.group(2)):12.3f} {float(b.group(1)):12.3f}")
PY
done
