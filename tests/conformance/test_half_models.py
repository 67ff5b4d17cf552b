#!/usr/bin/env python3
"""A half-precision export (float16/bfloat16 weights, Casts to float16, a float16 output) is computed
in float32 (frontend/onnx_half.c): `bitpipec run` on tests/conformance/half/half.onnx gives float32
outputs equal to numpy's float32 function of the file's weights (half.y.npy, computed in float64 and
rounded; relative 1e-6), says so in a note, and `bitpipec train` (MSE on the output) trains it: the loss
falls over 5 steps.

usage: test_half_models.py BITPIPEC   (numpy only; closing line `N passed, M failed`)"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "half")


def main():
    bitpipec = sys.argv[1]
    model, x = os.path.join(HERE, "half.onnx"), os.path.join(HERE, "x.npy")
    results = []
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run([bitpipec, "run", model, "--input", "x=" + x, "--output-dir", out],
                           capture_output=True, text=True)
        ok = p.returncode == 0 and "computed in float32" in p.stderr
        detail = f"exit {p.returncode}: {p.stderr.strip()}"
        if ok:
            got, want = np.load(os.path.join(out, "y.npy")), np.load(os.path.join(HERE, "half.y.npy"))
            rel = float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())
            ok = got.dtype == np.float32 and got.shape == want.shape and rel <= 1e-6
            detail = f"{got.dtype} {list(got.shape)}, max rel diff vs numpy float32 {rel:.2e}"
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} run: {detail}")
        tg = os.path.join(out, "targets.npy")
        np.save(tg, np.zeros((2, 3, 5), np.float32))
        p = subprocess.run([bitpipec, "train", model, "--input", "x=" + x, "--targets", tg, "--loss", "mse",
                            "--steps", "5", "--lr", "0.5"], capture_output=True, text=True)
        losses = [float(l.split()[3]) for l in p.stdout.splitlines() if l.startswith("step ")]
        ok = p.returncode == 0 and len(losses) == 5 and all(b < a for a, b in zip(losses, losses[1:]))
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} train (mse, sgd lr 0.5): losses {losses} {p.stderr.strip()[-300:] if not ok else ''}")
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
