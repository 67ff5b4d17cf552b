#!/usr/bin/env bash
# scripts/install-deps.sh — installs what bitpipe needs on Debian 12 (as root), only what is
# missing: the C toolchain and libraries from Debian, numpy + onnxruntime from PyPI for the
# whole-model reference checks. Safe to run repeatedly.
set -euo pipefail

debs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
      libglpk-dev libopenmpi-dev openmpi-bin libopenblas-dev python3 python3-pip)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c "import numpy, onnxruntime" 2>/dev/null; then
  echo "install-deps: pip install numpy onnxruntime"
  python3 -m pip install -q numpy onnxruntime 2>/dev/null ||
    python3 -m pip install -q --break-system-packages numpy onnxruntime
fi
