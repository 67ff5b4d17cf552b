#!/usr/bin/env bash
# scripts/gpu-test.sh [BUILD_DIR] [--prebuilt] — on a machine with a GPU: builds bitpipe with the CUDA
# backend (the targets the GPU tests need) and runs the GPU tests, printing their tables:
#   1. tests/gpu/test_gpu_ops    every CUDA op against the CPU backend (model nodes + random cases)
#   2. tests/gpu/test_gpu_train  GPT-2 and Llama, 5 steps SGD / SGD+clip / AdamW, GPU vs CPU losses
#   3. tests/gpu/run_memcheck.sh compute-sanitizer memcheck on one training step, and memcheck on
#      the whole op check (every kernel on every layout it tries)
#   4. `bitpipec train --device cuda` through the command line in each precision, next to the CPU
#   5. tests/gpu/test_pipeline_gpu.py matrix: the compiled pipeline (`mpirun -np 4 ./train --device
#      cuda`, the transports, memcheck on one step) against ./train --device cpu and bitpipec train,
#      every schedule; before it test_pipeline_gpu_order (which programs NCCL can carry)
#   6. layer costs profiled on the GPU (bitpipec --device-model gpu-profile): tests/gpu/test_gpu_profile*,
#      and tests/gpu/profile_table.sh's table (GPT-2's layers fwd/bwd us, partitions vs the h100 model)
# --only-pipeline: build and run step 5 alone; --quick: step 5 on the bitpipe and 1f1b schedules only.
# --prebuilt: use the binaries already in BUILD_DIR (built on another x86-64 machine) instead of
# building. Full logs go to $OUT when set (the device tool's output folder), else
# /tmp/bitpipe-gpu-test. If .carry/debs holds the Debian packages the GPU machine lacks
# (../shared/gpu/prepare.sh: protobuf-c, GLPK, onnx.proto, OpenBLAS) and protoc-c is missing, they are
# unpacked into /tmp/deps and the build is pointed there. Exit status: 0 when every test passed,
# 1 on a test failure, 3 when the build failed.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=build-gpu
prebuilt=0
only_pipeline=0
quick=
for a in "$@"; do
  case $a in
  --prebuilt) prebuilt=1 ;;
  --only-pipeline) only_pipeline=1 ;;
  --quick) quick=--quick ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) dir=$a ;;
  esac
done
log=${OUT:-/tmp/bitpipe-gpu-test}
mkdir -p "$log"

cmake_extra=()
if [ -d .carry/debs ] && ! command -v protoc-c >/dev/null 2>&1; then
  P=/tmp/deps
  mkdir -p $P
  for f in .carry/debs/*.deb; do dpkg -x "$f" $P; done
  B=$P/usr/lib/x86_64-linux-gnu
  export PATH=$P/usr/bin:$PATH LD_LIBRARY_PATH=$B:$B/openblas-pthread:${LD_LIBRARY_PATH:-} CPATH=$P/usr/include \
    LIBRARY_PATH=$B:$B/openblas-pthread CMAKE_PREFIX_PATH=$P/usr PKG_CONFIG_PATH=$B/pkgconfig
  cmake_extra=(-DONNX_PROTO=$P/usr/include/onnx/onnx.proto -DCBLAS_INCLUDE=$P/usr/include/x86_64-linux-gnu/openblas-pthread
    -DBLAS_LIBRARIES=$B/openblas-pthread/libopenblas.so)
  echo "deps: unpacked .carry/debs into $P"
fi

echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
if [ $prebuilt = 0 ]; then
  t0=$(date +%s)
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_extra[@]}" >"$log/build.log" 2>&1 ||
    ! cmake --build "$dir" -j"$(nproc)" --target bitpipec test_gpu_ops test_gpu_train gpu_probe test_pipeline_gpu_transport \
      test_pipeline_gpu_order >>"$log/build.log" 2>&1; then
    grep -E "error|Error|CMake Error" -A4 "$log/build.log" | head -60
    echo "build failed (log: $log/build.log)"
    exit 3
  fi
  echo "== build ($dir): $(($(date +%s) - t0)) s"
fi
for b in tools/bitpipec tests/gpu/test_gpu_ops tests/gpu/test_gpu_train tests/gpu/gpu_probe tests/gpu/test_pipeline_gpu_transport; do
  [ -x "$dir/$b" ] || { echo "missing $dir/$b"; exit 1; }
done
"$dir/tests/gpu/gpu_probe" || { echo "no GPU: nothing to test"; exit 0; }

rc=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
run() { # NAME COMMAND...: output into $log/NAME.log
  local name=$1 s r
  shift
  s=$(date +%s)
  "$@" >"$log/$name.log" 2>&1
  r=$?
  echo "== $name: exit $r, $(($(date +%s) - s)) s (log: $log/$name.log)"
  return $r
}
pipeline() {
  local r=0
  run pipeline_order "$dir/tests/gpu/test_pipeline_gpu_order" || r=1
  run pipeline python3 tests/gpu/test_pipeline_gpu.py matrix "$dir/tools/bitpipec" "$dir/tests/gpu/gpu_probe" models \
    "$dir/tests/gpu/test_pipeline_gpu_transport" $quick || r=1
  return $r
}
if [ $only_pipeline = 1 ]; then
  pipeline || rc=1
  echo
  echo "#### the compiled pipeline on the GPU (tests/gpu/test_pipeline_gpu.py)"
  cat "$log/pipeline_order.log" "$log/pipeline.log"
  [ $rc = 0 ] && echo "gpu-test: pipeline passed" || echo "gpu-test: FAILURES (logs in $log)"
  exit $rc
fi
run gpu_ops "$dir/tests/gpu/test_gpu_ops" models || rc=1
run gpu_train "$dir/tests/gpu/test_gpu_train" models || rc=1
run memcheck bash tests/gpu/run_memcheck.sh "$dir/tests/gpu/gpu_probe" "$dir/tools/bitpipec" models || rc=1
# every kernel of the op check (random layouts included) under memcheck too
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
run memcheck_ops "$cs" --tool memcheck --leak-check full --error-exitcode 3 "$dir/tests/gpu/test_gpu_ops" models || rc=1
{
  for dev in "cpu fp32" "cuda fp32" "cuda tf32" "cuda bf16"; do
    set -- $dev
    echo "-- bitpipec train models/gpt2/train.onnx --optimizer adamw --lr 1e-3 --device $1 --precision $2"
    TIMEFORMAT="   wall %R s"
    time "$dir/tools/bitpipec" train models/gpt2/train.onnx --input input_ids=models/gpt2/input_ids.npy \
      --targets models/gpt2/targets.npy --steps 5 --optimizer adamw --lr 1e-3 --weight-decay 0.01 --no-dropout \
      --device "$1" --precision "$2" || echo "   FAILED"
  done
} >"$log/cli.log" 2>&1
grep -q FAILED "$log/cli.log" && rc=1
pipeline || rc=1

echo
echo "#### op check (tests/gpu/test_gpu_ops)"
cat "$log/gpu_ops.log"
echo
echo "#### training, GPU vs CPU (tests/gpu/test_gpu_train)"
grep -E "^\||^device|FAIL|failed" "$log/gpu_train.log"
echo
echo "#### compute-sanitizer"
grep -E "ERROR SUMMARY|LEAK SUMMARY|memcheck:|skipped" "$log/memcheck.log"
echo "op check under memcheck: $(grep -E "ERROR SUMMARY|LEAK SUMMARY" "$log/memcheck_ops.log" | tr '\n' ' ')"
echo
echo "#### bitpipec train --device cuda"
grep -E "^--|^step 5|^device|wall|FAILED|note" "$log/cli.log"
echo
echo "#### the compiled pipeline on the GPU (tests/gpu/test_pipeline_gpu.py)"
cat "$log/pipeline_order.log" "$log/pipeline.log"
# ---- 6. layer costs profiled on the GPU (--device-model gpu-profile): tests/gpu/test_gpu_profile (the
# library path, whole-run comparison, cache keys), test_gpu_profile_cli.py (the commands), and
# tests/gpu/profile_table.sh (GPT-2's layers on the GPU vs the h100 model, the partitions chosen)
if [ $prebuilt = 1 ] || cmake --build "$dir" -j"$(nproc)" --target test_gpu_profile >>"$log/build.log" 2>&1; then
  run gpu_profile "$dir/tests/gpu/test_gpu_profile" models || rc=1
  run gpu_profile_cli python3 tests/gpu/test_gpu_profile_cli.py "$dir/tools/bitpipec" "$dir/tests/gpu/gpu_probe" models || rc=1
  run gpu_profile_table bash tests/gpu/profile_table.sh "$dir/tools/bitpipec" models || rc=1
  echo
  echo "#### layer costs profiled on the GPU (tests/gpu/test_gpu_profile*, tests/gpu/profile_table.sh)"
  grep -E "^GPU|^==|^source|^whole|FAIL|passed" "$log/gpu_profile.log"
  grep -E "^compile|^cpu-profile|^bf16|^no GPU|FAIL|passed" "$log/gpu_profile_cli.log"
  cat "$log/gpu_profile_table.log"
else
  echo "build of test_gpu_profile failed (log: $log/build.log)"
  rc=1
fi
echo
[ $rc = 0 ] && echo "gpu-test: all passed" || echo "gpu-test: FAILURES (logs in $log)"
exit $rc
