#!/usr/bin/env bash
# bench/gpt2_124m/run.sh [options] — the GPT-2 124M training benchmark (issue 7), on the GPU machine:
# builds bitpipe there, exports GPT-2 124M (random weights, the training recipe) with
# bench/gpt2_124m/export.py, trains it with `bitpipec train --device cuda` (the single-GPU trainer),
# with the compiled pipeline program on the one GPU (`bitpipec model.onnx -o train -D 1|2 ...`, run
# with `mpirun -np D ./train --device cuda`: D=1 is the pipeline runtime without a pipeline; D=2 puts
# two ranks on the one GPU, host-staged, so it measures the runtime's overhead, not a speed-up) and
# with PyTorch eager and torch.compile (bench/gpt2_124m/torch_bench.py) on the same batch, and
# prints ONE table:
#   system, precision, batch, ms/step, tokens/s, achieved TFLOP/s.
# FLOPs per step = (6 N + 12 L d T) * B * T: N = parameters without the position table (each weight
# in one multiply-add forward, two backward: 6 FLOPs per token; the tied LM head counted once, as a
# matmul), 12 L d T = attention's two T x T products per layer (QK^T and PV, forward + backward) at
# full T x T, which bitpipe's exported eager attention computes; PyTorch's flash attention skips the
# causal half, so its figure counts some FLOPs it does not do (the same numerator for every row).
#
# Options:
#   --batch B          sequences of 1024 tokens per step (default 16); when bitpipe runs out of
#                      memory the script halves B (8, 4) and measures every system at that B
#   --precisions "bf16 tf32 fp32"  bitpipe's GEMM precisions to run (default "bf16")
#   --steps K          bitpipe steps (default 6; the first --warm are not timed); PyTorch: 20 timed
#   --warm W           bitpipe warm-up steps (default 2)
#   --no-torch         skip PyTorch
#   --bitpipe-only     bitpipe's rows alone (= --no-torch --no-folds-row)
#   --no-pipeline      skip the compiled pipeline's rows (./train); their configurations, each at
#                      the same batch (micro-batch x N = B), AdamW as the other rows, schedule 1f1b:
#                        D=1 N=1 micro-batch B, D=1 N=4 micro-batch B/4, D=2 N=4 micro-batch B/4
#                      tokens/s from ./train's own step times (steps after --warm), bf16 GEMMs
#   --profile          one more bitpipe bf16 run with BP_CUDA_PROFILE=1 (per-op GPU times)
#   --no-folds-row     skip the extra bitpipe bf16 row with BP_CUDA_FOLD=0 (the executor's folds of
#                      Transpose/scalar Mul into MatMul and the bf16 operand cache off)
#   --test             run scripts/gpu-test.sh --quick first (build + op check + training + memcheck,
#                      the compiled pipeline on the bitpipe and 1f1b schedules)
#   --build DIR        build directory (default build-bench-gpu)
# Logs go to $OUT (the device tool's folder; else /tmp/gpt2-bench): run.log (everything) and
# logs.tar.gz (each step's log). The ~500 MB export stays in /tmp/gpt2_124m on that machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
batch=16 precs="bf16" steps=6 warm=2 torch=1 profile=0 test=0 dir=build-bench-gpu foldrow=1 pipe=1
while [ $# -gt 0 ]; do
  case $1 in
  --batch) batch=$2; shift ;;
  --precisions) precs=$2; shift ;;
  --steps) steps=$2; shift ;;
  --warm) warm=$2; shift ;;
  --no-torch) torch=0 ;;
  --bitpipe-only) torch=0; foldrow=0 ;;
  --no-pipeline) pipe=0 ;;
  --profile) profile=1 ;;
  --no-folds-row) foldrow=0 ;;
  --test) test=1 ;;
  --build) dir=$2; shift ;;
  -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "run.sh: unknown option '$1' (see --help)"; exit 2 ;;
  esac
  shift
done
out=${OUT:-/tmp/gpt2-bench}
logs=/tmp/gpt2-bench-logs
exp=/tmp/gpt2_124m
mkdir -p "$out" "$logs" "$exp"
T=1024 L=12 D=768
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

main() {
echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -1)"
# ---- build (gpu-test.sh builds bitpipec with the tests; otherwise bitpipec alone) ----
t0=$(now)
if [ $test = 1 ]; then
  OUT=$logs/gpu-test bash scripts/gpu-test.sh "$dir" --quick >"$logs/gpu-test.out" 2>&1
  trc=$?
  echo "== gpu-test.sh: exit $trc, $(secs "$t0") s"
  sed -n '/^#### op check/,$p' "$logs/gpu-test.out" | grep -vE "^\| (Reshape|Mul|Add|Transpose)" | tail -60
  [ $trc = 3 ] && { echo "build failed"; tar -C $logs -czf "$out/logs.tar.gz" .; exit 3; }
  if [ $trc != 0 ]; then # which part failed: again with the executor's folds off
    t0=$(now)
    BP_CUDA_FOLD=0 OUT=$logs/gpu-test-nofold bash scripts/gpu-test.sh "$dir" --prebuilt --quick >"$logs/gpu-test-nofold.out" 2>&1
    echo "== gpu-test.sh with BP_CUDA_FOLD=0: exit $?, $(secs "$t0") s"
    grep -E "failed|FAIL|gpu-test:" "$logs/gpu-test-nofold.out" | head -20
  fi
else
  if [ -d .carry/debs ] && ! command -v protoc-c >/dev/null 2>&1; then
    P=/tmp/deps; mkdir -p $P
    for f in .carry/debs/*.deb; do dpkg -x "$f" $P; done
    B=$P/usr/lib/x86_64-linux-gnu
    export PATH=$P/usr/bin:$PATH LD_LIBRARY_PATH=$B:$B/openblas-pthread:${LD_LIBRARY_PATH:-} CPATH=$P/usr/include \
      LIBRARY_PATH=$B:$B/openblas-pthread CMAKE_PREFIX_PATH=$P/usr PKG_CONFIG_PATH=$B/pkgconfig
    extra=(-DONNX_PROTO=$P/usr/include/onnx/onnx.proto -DCBLAS_INCLUDE=$P/usr/include/x86_64-linux-gnu/openblas-pthread
      -DBLAS_LIBRARIES=$B/openblas-pthread/libopenblas.so)
  fi
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${extra[@]}" >"$logs/build.log" 2>&1 ||
    ! cmake --build "$dir" -j"$(nproc)" --target bitpipec >>"$logs/build.log" 2>&1; then
    grep -E "error|Error" -A4 "$logs/build.log" | head -40
    echo "build failed"; tar -C $logs -czf "$out/logs.tar.gz" .; exit 3
  fi
  echo "== build ($dir, bitpipec): $(secs "$t0") s"
fi
# gpu-test.sh unpacks the deps in its own shell: the libraries bitpipec links are needed here too
if [ -d /tmp/deps/usr/lib ]; then
  B=/tmp/deps/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=$B:$B/openblas-pthread:${LD_LIBRARY_PATH:-}
fi
bp=$dir/tools/bitpipec
[ -x $bp ] || { echo "no $bp"; exit 3; }

# ---- export ----
t0=$(now)
if ! python3 bench/gpt2_124m/export.py --out $exp --batch 16 8 4 --seq $T >"$logs/export.log" 2>&1; then
  tail -20 "$logs/export.log"; echo "export failed"; tar -C $logs -czf "$out/logs.tar.gz" .; exit 1
fi
grep "^export:" "$logs/export.log"
echo "== export: $(secs "$t0") s"
nparams=$(cat $exp/params.txt)
nflop=$((nparams - T * D)) # without wpe

results=() # "system|precision|batch|ms|extra"
# bitpipe_run PREC B [env...]: runs bitpipec train, prints the mean step time of the timed steps
bitpipe_run() {
  local p=$1 b=$2 log=$logs/bitpipe_$1_b$2${3:+_${3%%=*}}.log
  shift 2
  local t0; t0=$(now)
  env "$@" timeout 300 $bp train $exp/train.onnx --input input_ids=$exp/${b}x$T.input_ids.npy \
    --targets $exp/${b}x$T.targets.npy --steps $steps --optimizer adamw --lr 1e-4 --weight-decay 0.1 --no-dropout \
    --device cuda --precision $p >"$log" 2>&1
  local rc=$?
  echo "-- bitpipec train --precision $p batch $b ${*:-}: exit $rc, $(secs "$t0") s" >&2
  grep -E "^step|^device|error|out of memory" "$log" | head -20 >&2
  [ $rc = 0 ] || { tail -3 "$log" >&2; return 1; }
  awk -v w=$warm '$1 == "step" && $2 > w { s += $8; n++ } END { if (n) printf "%.3f", s / n; else print "nan" }' "$log"
}

# ---- bitpipe (the first precision decides the batch: halved while it runs out of memory) ----
first=1
for p in $precs; do
  while :; do
    if ms=$(bitpipe_run $p $batch); then
      results+=("bitpipe (bitpipec train, 1 GPU)|$p|$batch|$ms")
      break
    fi
    if [ $first = 1 ] && grep -q "out of memory" $logs/bitpipe_${p}_b$batch.log && [ $batch -gt 4 ]; then
      batch=$((batch / 2))
      echo "   out of memory: batch $batch from here on (every system)"
      continue
    fi
    grep -q "out of memory" $logs/bitpipe_${p}_b$batch.log && ms="out of memory" || ms=failed
    results+=("bitpipe (bitpipec train, 1 GPU)|$p|$batch|$ms")
    break
  done
  first=0
done
if [ $foldrow = 1 ]; then
  if ms=$(bitpipe_run bf16 $batch BP_CUDA_FOLD=0); then
    results+=("bitpipe, folds off (BP_CUDA_FOLD=0)|bf16|$batch|$ms")
  fi
fi
# ---- the compiled pipeline (./train) on the one GPU ----
# pipe_run D N MB: compiles (1f1b, the analytic H100 cost model: no profiling) and runs it, prints
# the mean step time of the steps after --warm from ./train's tokens/s (its own step clock)
pipe_run() {
  local D=$1 N=$2 mb=$3 w=/tmp/gpt2-pipe-D$1-N$2 log=$logs/pipeline_D$1_N$2.log
  local t0; t0=$(now)
  rm -rf $w; mkdir -p $w
  if ! timeout 300 $bp $exp/train.onnx -o $w/train -D $D -N $N --micro-batch $mb --seq $T --schedule 1f1b \
    --device-model h100 --optimizer adamw --lr 1e-4 --weight-decay 0.1 --no-dropout >"$log" 2>&1; then
    echo "-- bitpipec -D $D -N $N --micro-batch $mb: compile failed, $(secs "$t0") s" >&2
    tail -5 "$log" >&2; return 1
  fi
  local t1; t1=$(now)
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout 300 mpirun --oversubscribe -np $D \
    $w/train --input input_ids=$exp/${batch}x$T.input_ids.npy --targets $exp/${batch}x$T.targets.npy \
    --steps $steps --device cuda --precision bf16 --timeout 120 >>"$log" 2>&1
  local rc=$?
  echo "-- ./train D=$D N=$N micro-batch $mb (compile $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.0f", b-a}') s): exit $rc, $(secs "$t1") s" >&2
  grep -E "^step|^train: device|step time|tokens/s  |^ +[0-9]+ +[0-9.]+ +[0-9.]+|error|out of memory" "$log" | head -24 >&2
  [ $rc = 0 ] || { tail -4 "$log" >&2; return 1; }
  awk -v w=$warm -v tok=$((batch * T)) '$1 == "step" && $3 == "loss" && $2 > w && $8 > 0 { s += tok / $8 * 1e3; n++ }
    END { if (n) printf "%.3f", s / n; else print "nan" }' "$log"
}
if [ $pipe = 1 ]; then
  mb4=$((batch / 4)); [ $mb4 -ge 1 ] || mb4=1
  for cfg in "1 1 $batch" "1 4 $mb4" "2 4 $mb4"; do
    set -- $cfg
    label="bitpipe pipeline (./train D=$1, N=$2 x micro-batch $3, 1 GPU)"
    [ $1 = 2 ] && label="bitpipe pipeline (./train D=2, N=$2 x micro-batch $3, 2 ranks time-sharing 1 GPU, host-staged: overhead, not speed-up)"
    if ms=$(pipe_run $1 $2 $3); then
      results+=("$label|bf16|$batch|$ms")
    else
      grep -q "out of memory" $logs/pipeline_D$1_N$2.log && ms="out of memory" || ms=failed
      results+=("$label|bf16|$batch|$ms")
    fi
  done
fi
if [ $profile = 1 ]; then
  steps_save=$steps; steps=4
  bitpipe_run bf16 $batch BP_CUDA_PROFILE=1 >/dev/null
  steps=$steps_save
  grep "^profile" $logs/bitpipe_bf16_b${batch}_BP_CUDA_PROFILE.log | head -70
fi

# ---- PyTorch ----
if [ $torch = 1 ]; then
  for mode in eager compile; do
    t0=$(now)
    timeout 400 env PYTHONUNBUFFERED=1 python3 bench/gpt2_124m/torch_bench.py --mode $mode --input $exp/${batch}x$T.input_ids.npy \
      --targets $exp/${batch}x$T.targets.npy --steps 20 --warmup 5 >"$logs/torch_$mode.log" 2>&1
    rc=$?
    echo "-- torch_bench.py --mode $mode batch $batch: exit $rc, $(secs "$t0") s"
    grep -E "RESULT|warm-up|Error|error" "$logs/torch_$mode.log" | tail -5
    ms=$(sed -n 's/.*ms_per_step=\([0-9.]*\).*/\1/p' "$logs/torch_$mode.log")
    results+=("PyTorch $mode (torch_bench.py)|bf16 autocast|$batch|${ms:-failed}")
  done
fi
tar -C $logs -czf "$out/logs.tar.gz" .

# ---- the table ----
echo
echo "GPT-2 124M training step, sequence $T, AdamW, on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "FLOPs per step = (6 N + 12 L d T) B T, N = $nflop (parameters without wpe), L = $L, d = $D, T = $T"
echo
echo "| system | precision | batch | ms/step | tokens/s | TFLOP/s |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
  IFS='|' read -r sys p b ms <<<"$r"
  awk -v s="$sys" -v p="$p" -v b="$b" -v ms="$ms" -v n=$nflop -v L=$L -v d=$D -v T=$T 'BEGIN {
    if (ms !~ /^[0-9.]+$/) { printf "| %s | %s | %d x %d | %s | | |\n", s, p, b, T, ms; exit }
    tok = b * T; fl = (6 * n + 12 * L * d * T) * tok
    printf "| %s | %s | %d x %d | %.1f | %.0f | %.1f |\n", s, p, b, T, ms, tok / (ms / 1e3), fl / (ms / 1e3) / 1e12 }'
done
}

main 2>&1 | tee "$out/run.log"
exit "${PIPESTATUS[0]}"
