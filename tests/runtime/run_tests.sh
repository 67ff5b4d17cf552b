#!/usr/bin/env bash
# tests/runtime/run_tests.sh GROUP RT_TOY — the runtime's tests on the toy model (rt_toy.c), run
# under mpirun. Groups:
#   datacheck     the token order of data.c (windows, one visit per epoch, seeded)
#   equality      per-step loss and gradient norm of `mpirun -np D` equal the single-process
#                 trainer's (relative 1e-6 / 1e-5) for gpipe, 1f1b, interleaved, chimera, bitpipe,
#                 zb-h1, zb-v with D=2 and D=4, SGD with momentum and AdamW with clipping, token
#                 file and fixed batch
#   dataparallel  R=2 replicas x D=2 with N micro-batches each equal D=2 with 2N (and the reference)
#   checkpoint    SIGKILL at the start of step 4, resume, steps 4-6 bit-identical to an uninterrupted
#                 run; --save-onnx patches the trained weights at the recorded offsets
#   faults        a rank that exits, is killed, or stops responding mid-step: the others exit
#                 non-zero within 30 s with a message naming it
#   sanitize      a short tour of the above for the ASan/UBSan build
#   badinput      truncated / foreign weights, short data, foreign checkpoint, bad options: one clear
#                 line and a non-zero exit
set -uo pipefail
group=$1
toy=$2
mpirun=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
# shared-memory transport only (the test machine may have no usable network interface), and no
# cross-memory attach (containers often forbid process_vm_readv)
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# a session directory of its own: two mpiruns starting at once (ctest -j) race to create the shared
# /tmp/ompi.HOST.UID and one fails with "mkdir ... File exists"
export OMPI_MCA_orte_tmpdir_base=$work
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# mpirun passes only OMPI_* variables to the ranks unless told: the sanitizer settings too
fwd=()
for v in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; do [ -n "${!v:-}" ] && fwd+=(-x "$v"); done
run() { # run NP TOYOPTS... -- TRAINOPTS...  -> stdout in $work/out, stderr in $work/err, status in $rc
  local np=$1; shift
  local f=("${fwd[@]}")
  [ -n "${BITPIPE_FAULT:-}" ] && f+=(-x BITPIPE_FAULT)
  timeout 120 "$mpirun" --oversubscribe -np "$np" "${f[@]}" "$toy" run "$@" >"$work/out" 2>"$work/err"
  rc=$?
}

# compare FILE_A FILE_B TOL_LOSS TOL_NORM LABEL: the 'step K loss X grad_norm G' lines agree
compare() {
  awk -v tl="$3" -v tn="$4" -v label="$5" '
    function rel(a, b) { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); return m > 0 ? d / m : d }
    FNR == NR && $1 == "step" && $2 ~ /^[0-9]+$/ { la[$2] = $4; ga[$2] = $6; na++; next }
    $1 == "step" && $2 ~ /^[0-9]+$/ { nb++; if (!($2 in la)) { print label ": step " $2 " missing"; bad = 1; next }
      rl = rel(la[$2], $4); rg = rel(ga[$2], $6); if (rl > ml) ml = rl; if (rg > mg) mg = rg
      if (rl > tl || rg > tn) { print label ": step " $2 " loss " la[$2] " vs " $4 " grad_norm " ga[$2] " vs " $6; bad = 1 } }
    END { if (na == 0 || na != nb) { print label ": " na " vs " nb " step lines"; bad = 1 }
          printf "%-44s %d steps, max rel diff loss %.2e grad_norm %.2e %s\n", label, nb, ml, mg, bad ? "FAIL" : "ok"
          exit bad }' "$1" "$2" || fails=$((fails + 1))
}

prepare() { # prepare DIR TOYOPTS...
  local dir=$1; shift
  mkdir -p "$dir" && "$toy" prepare "$@" --dir "$dir" || { fail "prepare $*"; return 1; }
}

expect_error() { # expect_error LABEL PATTERN (after run): non-zero exit and PATTERN on stderr
  if [ "$rc" = 0 ]; then fail "$1: exit 0"; cat "$work/err"; return; fi
  if ! grep -q -- "$2" "$work/err"; then fail "$1: no '$2' in:"; cat "$work/err"; return; fi
  echo "$1: exit $rc, $(grep -m1 -- "$2" "$work/err")"
}

check_trace() { # check_trace FILE RANKS STEPS: a Chrome trace with every rank's compute and waits
  python3 - "$@" <<'EOF' || fail "trace $1"
import json, sys
path, ranks, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ev = json.load(open(path))['traceEvents']
names = {e['pid']: e['args']['name'] for e in ev if e['name'] == 'process_name'}
assert sorted(names) == list(range(ranks)), 'ranks %s' % sorted(names)
for r in range(ranks):
    mine = [e for e in ev if e['pid'] == r and e.get('ph') in ('X', 'i')]
    f = sum(1 for e in mine if e['name'].startswith('F '))
    b = sum(1 for e in mine if e['name'].startswith('B ') or e['name'].startswith('B(input) '))
    o = sum(1 for e in mine if e['name'] == 'optimizer')
    assert f > 0 and f == b, 'rank %d: %d forwards, %d backwards' % (r, f, b)
    assert o == steps, 'rank %d: %d optimizer steps' % (r, o)
    assert all(e['ts'] >= 0 and e.get('dur', 0) >= 0 for e in mine)
    assert {e['args']['step'] for e in mine} == set(range(1, steps + 1))
print('trace: %d ranks, %d events, forward = backward count on every rank' % (ranks, len(ev)))
EOF
}

case $group in
datacheck)
  prepare "$work/d" && "$toy" datacheck --dir "$work/d" || fail datacheck
  ;;

equality)
  # D=2: N=4, SGD with momentum; D=4: N=8, AdamW with clipping (the clip is active: norm > 0.5)
  for D in 2 4; do
    if [ $D = 2 ]; then N=4; opt=(--optimizer sgd --lr 0.2 --momentum 0.9); else N=8; opt=(--optimizer adamw --lr 0.01 --clip 0.5); fi
    d=$work/eq$D
    prepare "$d" -N $N -D $D --schedule 1f1b || continue
    "$toy" reference -N $N -D $D -- --data "$d/tokens.bin" --steps 3 --seed 3 "${opt[@]}" >"$d/ref" ||
      fail "reference D=$D"
    for s in gpipe 1f1b interleaved chimera bitpipe zb-h1 zb-v; do
      prepare "$d/$s" -N $N -D $D --schedule $s || continue
      run $D --schedule $s -N $N -D $D -- --weights "$d/$s/toy.weights" --data "$d/tokens.bin" --steps 3 --seed 3 \
        "${opt[@]}" --quiet
      if [ $rc != 0 ]; then fail "$s D=$D exit $rc"; cat "$work/err"; continue; fi
      compare "$d/ref" "$work/out" 1e-6 1e-5 "$s D=$D N=$N ${opt[1]} vs single process"
    done
  done
  # a fixed batch from .npy files (one target is the ignore index)
  d=$work/eq2
  "$toy" reference -N 4 -D 2 -- --input "tokens=$d/tokens.npy" --targets "$d/targets.npy" --steps 3 >"$d/ref_fixed" ||
    fail "reference fixed batch"
  run 2 --schedule bitpipe -N 4 -D 2 -- --weights "$d/bitpipe/toy.weights" --input "tokens=$d/tokens.npy" \
    --targets "$d/targets.npy" --steps 3 --quiet
  [ $rc = 0 ] || { fail "fixed batch exit $rc"; cat "$work/err"; }
  compare "$d/ref_fixed" "$work/out" 1e-6 1e-5 "bitpipe D=2 fixed batch (.npy) vs single process"
  ;;

dataparallel)
  d=$work/dp
  for s in 1f1b bitpipe; do
    prepare "$d/$s-n2" -N 2 -D 2 --schedule $s --replicas 2 && prepare "$d/$s-n4" -N 4 -D 2 --schedule $s || continue
    opt=(--steps 3 --seed 5 --optimizer adamw --lr 0.01 --quiet)
    run 4 --schedule $s -N 2 -D 2 -- --weights "$d/$s-n2/toy.weights" --data "$d/$s-n2/tokens.bin" "${opt[@]}"
    [ $rc = 0 ] || { fail "$s R=2 exit $rc"; cat "$work/err"; continue; }
    cp "$work/out" "$d/r2"
    if [ $s = bitpipe ]; then
      run 4 --schedule $s -N 2 -D 2 -- --weights "$d/$s-n2/toy.weights" --data "$d/$s-n2/tokens.bin" "${opt[@]}" \
        --trace "$d/trace.json"
      check_trace "$d/trace.json" 4 3
    fi
    run 2 --schedule $s -N 4 -D 2 -- --weights "$d/$s-n4/toy.weights" --data "$d/$s-n2/tokens.bin" "${opt[@]}"
    [ $rc = 0 ] || { fail "$s R=1 exit $rc"; cat "$work/err"; continue; }
    compare "$work/out" "$d/r2" 1e-6 1e-5 "$s R=2 x D=2 (N=2) vs R=1 x D=2 (N=4)"
    "$toy" reference -N 2 -D 2 --replicas 2 -- --data "$d/$s-n2/tokens.bin" --steps 3 --seed 5 --optimizer adamw \
      --lr 0.01 >"$d/ref" || fail "reference"
    compare "$d/ref" "$d/r2" 1e-6 1e-5 "$s R=2 x D=2 vs single process"
    # the fixed batch split over the replicas
    run 4 --schedule $s -N 2 -D 2 -- --weights "$d/$s-n2/toy.weights" --input "tokens=$d/$s-n2/tokens.npy" \
      --targets "$d/$s-n2/targets.npy" --steps 2 --quiet
    [ $rc = 0 ] || { fail "$s R=2 fixed exit $rc"; cat "$work/err"; continue; }
    "$toy" reference -N 2 -D 2 --replicas 2 -- --input "tokens=$d/$s-n2/tokens.npy" --targets "$d/$s-n2/targets.npy" \
      --steps 2 >"$d/ref_fixed"
    compare "$d/ref_fixed" "$work/out" 1e-6 1e-5 "$s R=2 x D=2 fixed batch vs single process"
  done
  ;;

checkpoint)
  d=$work/ck
  prepare "$d" -N 4 -D 2 --schedule bitpipe --optimizer adamw --lr 0.01 || exit 1
  toyo=(--schedule bitpipe -N 4 -D 2 --optimizer adamw --lr 0.01)
  base=(--weights "$d/toy.weights" --data "$d/tokens.bin" --steps 6 --seed 11 --quiet)
  run 2 "${toyo[@]}" -- "${base[@]}" --save-every 6 --checkpoint "$d/straight_ck"
  [ $rc = 0 ] || { fail "uninterrupted exit $rc"; cat "$work/err"; }
  grep '^step [456] ' "$work/out" | awk '{print $1, $2, $3, $4, $5, $6}' >"$d/straight"
  # killed (SIGKILL, rank 1) at the start of step 4, after the checkpoint of step 3
  BITPIPE_FAULT=1:4:kill run 2 "${toyo[@]}" -- "${base[@]}" --save-every 1 --checkpoint "$d/ckpt"
  [ $rc != 0 ] || fail "the killed run exited 0"
  grep -q '^step 3 ' "$work/out" && ! grep -q '^step 4 ' "$work/out" || fail "the killed run did not stop at step 4"
  echo "killed run: exit $rc after $(grep -c '^step' "$work/out") steps; $(ls "$d/ckpt")"
  run 2 "${toyo[@]}" -- "${base[@]}" --resume "$d/ckpt" --save-every 6 --checkpoint "$d/resumed_ck"
  [ $rc = 0 ] || { fail "resume exit $rc"; cat "$work/err"; }
  # the state after step 6 (weights and AdamW moments) is the same to the bit
  if cmp -s "$d/straight_ck/checkpoint.bin" "$d/resumed_ck/checkpoint.bin"; then
    echo "resume: the checkpoints after step 6 are identical ($(stat -c %s "$d/resumed_ck/checkpoint.bin") bytes)"
  else
    fail "resume: the checkpoints after step 6 differ"
  fi
  grep '^step' "$work/out" | awk '{print $1, $2, $3, $4, $5, $6}' >"$d/resumed"
  if [ -s "$d/resumed" ] && cmp -s "$d/straight" "$d/resumed"; then
    echo "resume: steps 4-6 identical to the uninterrupted run:"; cat "$d/resumed"
  else
    fail "resume: steps 4-6 differ"; paste "$d/straight" "$d/resumed"
  fi
  # a checkpoint at the last step, and --save-onnx into a copy of the (stand-in) model file:
  # every parameter's bytes at its recorded offset equal the checkpoint's values
  run 2 "${toyo[@]}" --dir "$d" -- --weights "$d/toy.weights" --data "$d/tokens.bin" --steps 2 --seed 11 --quiet \
    --save-every 2 --checkpoint "$d/ck2" --save-onnx "$d/trained.model"
  [ $rc = 0 ] || { fail "save-onnx exit $rc"; cat "$work/err"; }
  echo "checkpoint at step 2 and --save-onnx: exit $rc"
  python3 - "$d/ck2/checkpoint.bin" "$d/toy.model" "$d/trained.model" <<'EOF' || fail "--save-onnx content"
import struct, sys
ck = open(sys.argv[1], 'rb').read(); orig = open(sys.argv[2], 'rb').read(); out = open(sys.argv[3], 'rb').read()
n_params = struct.unpack_from('<I', ck, 12)[0]; states = struct.unpack_from('<I', ck, 44)[0]
numel = struct.unpack_from('<%dq' % n_params, ck, 64)
pos, off, changed = 64 + 8 * n_params, 100, 0
assert len(out) == len(orig), 'size changed'
for g, n in enumerate(numel):
    rec = ck[pos:pos + 4 * n]; pos += 4 * n * (1 + states)
    assert out[off:off + 4 * n] == rec, 'parameter %d differs' % g
    changed += orig[off:off + 4 * n] != rec
    assert out[off - 16:off] == orig[off - 16:off], 'bytes before parameter %d touched' % g
    off += 4 * n + 16
assert changed == len(numel), 'some parameter did not change in training'
print('--save-onnx: %d parameters patched at their offsets, equal to the checkpoint' % len(numel))
EOF
  ;;

sanitize)
  # a short tour for the ASan/UBSan build: pipes, tied weights, local hand-overs, split backward,
  # checkpoint and resume, trace, --save-onnx and a bad input
  d=$work/s
  prepare "$d" -N 4 -D 2 --schedule bitpipe || exit 1
  "$toy" reference -N 4 -D 2 -- --input "tokens=$d/tokens.npy" --targets "$d/targets.npy" --steps 2 >"$d/ref" || fail reference
  run 2 --schedule bitpipe -N 4 -D 2 --dir "$d" -- --weights "$d/toy.weights" --input "tokens=$d/tokens.npy" \
    --targets "$d/targets.npy" --steps 2 --save-every 1 --checkpoint "$d/ck" --trace "$d/trace.json" \
    --save-onnx "$d/trained.model"
  [ $rc = 0 ] || { fail "bitpipe exit $rc"; cat "$work/err"; }
  compare "$d/ref" "$work/out" 1e-6 1e-5 "bitpipe D=2 vs single process"
  check_trace "$d/trace.json" 2 2
  run 2 --schedule bitpipe -N 4 -D 2 -- --weights "$d/toy.weights" --input "tokens=$d/tokens.npy" \
    --targets "$d/targets.npy" --steps 3 --resume "$d/ck" --quiet
  [ $rc = 0 ] && grep -q '^step 3 ' "$work/out" || { fail "resume exit $rc"; cat "$work/err"; }
  prepare "$d/z" -N 2 -D 2 --schedule zb-h1 || exit 1
  "$toy" reference -N 2 -D 2 -- --data "$d/tokens.bin" --steps 2 >"$d/zref" || fail reference
  run 2 --schedule zb-h1 -N 2 -D 2 -- --weights "$d/z/toy.weights" --data "$d/tokens.bin" --steps 2 --quiet
  compare "$d/zref" "$work/out" 1e-6 1e-5 "zb-h1 D=2 vs single process"
  head -c 3000 "$d/toy.weights" >"$d/trunc.weights"
  run 2 --schedule bitpipe -N 4 -D 2 -- --weights "$d/trunc.weights" --data "$d/tokens.bin"
  expect_error "truncated weights" "is truncated"
  ;;

faults)
  d=$work/f
  prepare "$d" -N 4 -D 4 --schedule 1f1b || exit 1
  toyo=(--schedule 1f1b -N 4 -D 4)
  base=(--weights "$d/toy.weights" --data "$d/tokens.bin" --steps 4 --quiet --timeout 5)
  for kind in exit kill hang; do
    t0=$(date +%s)
    BITPIPE_FAULT=2:2:$kind run 4 "${toyo[@]}" -- "${base[@]}"
    dt=$(($(date +%s) - t0))
    [ $rc != 0 ] || fail "$kind: exit 0"
    [ $dt -le 30 ] || fail "$kind: took $dt s"
    # the rank named: by our watchdog ("rank 2 may have died") or by mpirun ("rank 2 with PID")
    if grep -Eq 'rank 2 may have died|rank 2 with PID|process rank 2' "$work/err"; then
      echo "fault '$kind' on rank 2: exit $rc after $dt s: $(grep -Em1 'rank 2 may have died|rank 2 with PID|process rank 2' "$work/err" | sed 's/^ *//')"
    else
      fail "$kind: rank 2 not named"; cat "$work/err"
    fi
  done
  ;;

badinput)
  # mostly one process (D=1, MPI's singleton mode: no mpirun start-up per case); the first cases
  # and the world-size check under mpirun, where every rank must agree to stop
  d=$work/b
  prepare "$d" -N 4 -D 2 || exit 1
  prepare "$d/d1" -N 2 -D 1 || exit 1
  prepare "$d/other" -N 2 -D 1 --hidden 8 || exit 1
  single() { timeout 60 "$toy" run -N 2 -D 1 "$@" >"$work/out" 2>"$work/err"; rc=$?; }
  head -c 5000 "$d/toy.weights" >"$d/trunc.weights"
  run 2 -N 4 -D 2 -- --weights "$d/trunc.weights" --data "$d/tokens.bin"
  expect_error "truncated weights (2 ranks)" "is truncated"
  run 3 -N 4 -D 2 -- --weights "$d/toy.weights" --data "$d/tokens.bin"
  expect_error "world size not a multiple of D" "not a multiple"
  ok=(--weights "$d/d1/toy.weights" --data "$d/tokens.bin" --steps 1 --quiet)
  single -- --weights "$d/other/toy.weights" --data "$d/tokens.bin"
  expect_error "weights of another compile" "belongs to another compile"
  single -- --weights "$d/tokens.bin" --data "$d/tokens.bin"
  expect_error "not a weights file" "not a bitpipe weights file"
  python3 -c "
import struct, sys
open(sys.argv[1], 'wb').write(struct.pack('<256i', 20240520, 1, 30, *[0] * 253) + bytes(60))" "$d/short.bin"
  single -- --weights "$d/d1/toy.weights" --data "$d/short.bin"
  expect_error "short data file" "is too short"
  head -c 3000 "$d/tokens.bin" >"$d/cut.bin"
  single -- --weights "$d/d1/toy.weights" --data "$d/cut.bin"
  expect_error "truncated data file" "is truncated"
  single -- --weights "$d/d1/toy.weights" --data "$d/toy.weights"
  expect_error "not a token file" "is not a token file"
  single -- --weights "$d/d1/toy.weights" --input "tokens=$d/d1/tokens.npy" --targets "$d/d1/targets.npy" --input "x=$d/tokens.npy"
  expect_error "unknown input" "has no such input"
  single -- --weights "$d/d1/toy.weights" --input "tokens=$d/tokens.npy" --targets "$d/d1/targets.npy"
  expect_error "fixed batch of the wrong size" "one step needs"
  single -- --weights "$d/d1/toy.weights" --input "tokens=$d/d1/tokens.npy"
  expect_error "no targets" "--targets FILE is required"
  # a checkpoint of another model
  timeout 60 "$toy" run -N 2 -D 1 --hidden 8 -- --weights "$d/other/toy.weights" --data "$d/tokens.bin" --steps 1 \
    --quiet --save-every 1 --checkpoint "$d/other/ck" >"$work/out" 2>"$work/err" || { fail "other model run"; cat "$work/err"; }
  single -- "${ok[@]}" --resume "$d/other/ck"
  expect_error "checkpoint of another model" "comes from another model"
  single -- "${ok[@]}" --save-every 1 --checkpoint "$d/d1/ck"
  [ $rc = 0 ] || { fail "checkpoint run exit $rc"; cat "$work/err"; }
  mkdir -p "$d/ckcut" && head -c 200 "$d/d1/ck/checkpoint.bin" >"$d/ckcut/checkpoint.bin"
  single -- "${ok[@]}" --resume "$d/ckcut"
  expect_error "truncated checkpoint" "is truncated or damaged"
  single -- "${ok[@]}" --resume "$d/nowhere"
  expect_error "missing checkpoint" "No such file"
  single -- "${ok[@]}" --optimizer adamw --resume "$d/d1/ck"
  expect_error "checkpoint and optimizer disagree" "holds SGD state; this run uses AdamW"
  single -- "${ok[@]}" --steps 3 --lr 1e30
  expect_error "diverging training" "the loss is NaN; stopping"
  single -- "${ok[@]}" --steps x
  expect_error "bad number" "expects a number"
  single -- "${ok[@]}" --lr -1
  expect_error "negative learning rate" "out of range"
  single -- "${ok[@]}" --save-every 2
  expect_error "--save-every without --checkpoint" "needs --checkpoint"
  single -- --weights "$d/d1/toy.weights"
  expect_error "no data" "no data"
  single -- "${ok[@]}" --bogus 1
  expect_error "unknown option" "unknown option"
  BITPIPE_FAULT=nonsense single -- "${ok[@]}"
  expect_error "bad BITPIPE_FAULT" "BITPIPE_FAULT is"
  timeout 60 "$toy" run -N 2 -D 2 -- "${ok[@]}" >"$work/out" 2>"$work/err"; rc=$?
  expect_error "one process for a 2-rank program" "not a multiple"
  # --help needs no MPI job
  "$toy" run -N 4 -D 2 -- --help >"$work/out" 2>&1 && grep -q "usage: mpirun" "$work/out" || fail "--help"
  ;;
*)
  echo "unknown group $group"; exit 2 ;;
esac
if [ $fails != 0 ]; then echo "$group: $fails failure(s)"; exit 1; fi
echo "$group: all passed"
