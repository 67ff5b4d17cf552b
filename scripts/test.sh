#!/usr/bin/env bash
# scripts/test.sh — the whole test suite on a fresh Debian machine: installs what is missing,
# builds (release and ASan/UBSan), runs ctest in both, and fuzzes the ONNX loader briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
bash scripts/build.sh build-asan -DBP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== ctest (release build) =="
(cd build && ctest --output-on-failure -j2)
echo "== ctest (ASan/UBSan build: bad inputs and conformance) =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -L sanitize)
echo "== fuzz the ONNX loader (libFuzzer, ${BP_FUZZ_SECONDS:-60} s) =="
bash tests/fuzz/run_fuzz.sh "${BP_FUZZ_SECONDS:-60}"
