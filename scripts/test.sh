#!/usr/bin/env bash
# scripts/test.sh — the whole test suite on a fresh Debian machine: installs what is missing,
# builds (release and ASan/UBSan), runs ctest in both, and fuzzes the ONNX loader briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The CUDA backend is compiled and linked whenever a toolkit is present (its GPU tests then skip
# without a GPU); Debian's CUDA lives in /usr/local/cuda, often outside PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
bash scripts/build.sh build
# The sanitizers do not mix with CUDA's runtime: the ASan/UBSan build is CPU only.
bash scripts/build.sh build-asan -DBP_SANITIZE=ON -DBP_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug
echo "== ctest (release build) =="
(cd build && ctest --output-on-failure -j2)
echo "== ctest (ASan/UBSan build: bad inputs and conformance) =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -L sanitize)
echo "== fuzz the ONNX loader (libFuzzer, ${BP_FUZZ_SECONDS:-60} s) =="
bash tests/fuzz/run_fuzz.sh "${BP_FUZZ_SECONDS:-60}"
