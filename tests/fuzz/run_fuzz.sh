#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh [SECONDS] — builds the loader fuzz target with clang (libFuzzer + ASan +
# UBSan) into build-fuzz/ and runs it for SECONDS (default 60) from a seed corpus of the committed
# models and bad-input files. Fails on any crash or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
CC=clang cmake -S . -B build-fuzz -DBP_FUZZ=ON -DBP_SANITIZE=ON -DBP_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_onnx_load >/dev/null
corpus=build-fuzz/corpus
mkdir -p "$corpus"
cp models/*/*.onnx tests/badinput/data/*.onnx "$corpus"/ 2>/dev/null || true
log=build-fuzz/fuzz.log
if ASAN_OPTIONS=detect_leaks=1 build-fuzz/tests/fuzz/fuzz_onnx_load "$corpus" -max_total_time="$secs" \
  -max_len=65536 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix=build-fuzz/ >"$log" 2>&1; then
  tail -n 6 "$log"
  echo "fuzz: ${secs}s without a crash"
else
  # the report: sanitizer summary, stack, and the reproducer (saved under build-fuzz/)
  grep -E "ERROR|SUMMARY|^ +#[0-9]+ |Test unit written|Base64" "$log" | head -60
  echo "fuzz: FAILED (full log: $log)"
  exit 1
fi
