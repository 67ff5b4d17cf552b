#!/usr/bin/env python3
"""SplitToSequence + SequenceAt at constant positions (frontend/onnx_seq.c rewrites them into
Slice/Gather at load): `bitpipec run` on each model of tests/conformance/seq/ must give exactly the
chunks onnxruntime gave (<name>.y<k>.npy, written by make_seq_models.py; chunks are copies, so the
comparison is bit for bit), and unsupported.onnx (the sequence is a graph output) must be refused
with a one-line error naming the node or the sequence value, not a crash.

usage: test_seq_models.py BITPIPEC   (numpy only; closing line `N passed, M failed`)"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seq")


def main():
    bitpipec = sys.argv[1]
    passed = failed = 0
    x = os.path.join(HERE, "x.npy")
    for f in sorted(os.listdir(HERE)):
        if not f.endswith(".onnx"):
            continue
        name = f[:-5]
        with tempfile.TemporaryDirectory() as out:
            p = subprocess.run([bitpipec, "run", os.path.join(HERE, f), "--input", "x=" + x, "--output-dir", out],
                               capture_output=True, text=True)
            if name == "unsupported":
                err = p.stderr.strip()
                ok = p.returncode == 1 and ("split_out" in err or "'s'" in err) and len(err.splitlines()) == 1
                detail = f"exit {p.returncode}: {err}"
            elif p.returncode != 0:
                ok, detail = False, f"exit {p.returncode}: {p.stderr.strip()}"
            else:
                ok, detail, k = True, [], 0
                while os.path.exists(os.path.join(HERE, f"{name}.y{k}.npy")):
                    want = np.load(os.path.join(HERE, f"{name}.y{k}.npy"))
                    got = np.load(os.path.join(out, f"y{k}.npy"))
                    same = got.shape == want.shape and np.array_equal(got, want)
                    ok = ok and same
                    detail.append(f"y{k} {list(got.shape)}{'' if same else ' differs from ' + str(list(want.shape))}")
                    k += 1
                ok = ok and k > 0
                detail = ", ".join(detail)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
