#!/usr/bin/env bash
# tests/badinput/run_bad_inputs.sh BITPIPEC — bad input must end with one clear error line naming
# the culprit and exit status 1: never a crash (status >= 128, sanitizer report) or a hang.
set -uo pipefail
bitpipec=$1
src=$(cd "$(dirname "$0")" && pwd)/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src"/. "$work"/
ln -s /etc/hostname "$work/escape_link.bin"
head -c 200 "$(dirname "$0")/../../models/gpt2/ts.onnx" > "$work/truncated.onnx"
head -c 4096 /dev/urandom > "$work/random.onnx"
: > "$work/empty.onnx"
pass=0 fail=0

expect() { # expect NAME PATTERN -- command...
  local name=$1 pattern=$2
  shift 3
  local out rc
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  if [ $rc -eq 1 ] && grep -q -- "$pattern" <<<"$out" && ! grep -q "Sanitizer\|runtime error" <<<"$out"; then
    pass=$((pass + 1))
    echo "ok   $name: $(head -n1 <<<"$out")"
  else
    fail=$((fail + 1))
    echo "FAIL $name (exit $rc, wanted 1 and /$pattern/):"
    echo "$out" | head -20
  fi
}

x="--input x=$work/x.npy"
expect truncated      "not a valid ONNX model"            -- "$bitpipec" inspect "$work/truncated.onnx"
expect random_bytes   "not a valid ONNX model"            -- "$bitpipec" run "$work/random.onnx" $x
expect empty_file     "empty"                             -- "$bitpipec" inspect "$work/empty.onnx"
expect missing_file   "cannot open"                       -- "$bitpipec" inspect "$work/does_not_exist.onnx"
expect unsupported    "FancyOp (2 nodes, first 'fancy_first').*LSTMish (1 node, first 'lstmish_node')" -- "$bitpipec" run "$work/unsupported_ops.onnx" $x
expect shape_mismatch "proj_matmul"                       -- "$bitpipec" run "$work/shape_mismatch.onnx" $x
expect unbound_dim    "symbolic dimension 'batch'"        -- "$bitpipec" inspect "$work/symbolic.onnx"
expect ext_missing    "no_such_weights.bin"               -- "$bitpipec" run "$work/external_missing.onnx" $x
expect ext_escape     "leaves the model's folder"         -- "$bitpipec" run "$work/external_escape.onnx" $x
expect ext_absolute   "is absolute"                       -- "$bitpipec" run "$work/external_absolute.onnx" $x
expect ext_symlink    "outside the model's folder"        -- "$bitpipec" run "$work/external_symlink.onnx" $x
expect ext_past_end   "passes the end"                    -- "$bitpipec" run "$work/external_past_end.onnx" $x
expect bad_input_name "has no input of that name"         -- "$bitpipec" run "$work/external_ok.onnx" --input nope="$work/x.npy"
expect bad_npy        "not a .npy file"                   -- "$bitpipec" run "$work/external_ok.onnx" --input x="$work/weights.bin"

# The well-formed external-data model must load and compute x + w.
if "$bitpipec" run "$work/external_ok.onnx" $x --output-dir "$work/out" >/dev/null 2>&1 &&
   python3 - "$work/out/y.npy" <<'PY' 2>/dev/null
import sys, numpy as np
y = np.load(sys.argv[1]); assert np.array_equal(y, 2 * np.arange(6, dtype=np.float32).reshape(2, 3)), y
PY
then pass=$((pass + 1)); echo "ok   external_ok: loads and computes x + w"
else fail=$((fail + 1)); echo "FAIL external_ok"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
