#!/usr/bin/env python3
"""GELU fusion (frontend/fuse_gelu.c), end to end through bitpipec:
  1. each case of tests/fuse/cases (make_cases.py): `bitpipec inspect` fuses the chains cases.json
     names (tanh / erf counts; none in the negative cases, none with BP_FUSE=0), and `bitpipec run`
     with the fusion on and off equals onnxruntime on the original file (the committed output;
     recomputed too when onnxruntime is importable);
  2. the committed exports (models/): GPT-2's gelu_new chains fused in the TorchScript, training
     and dynamo exports, BERT's erf chains in TorchScript and training (its dynamo export already
     has Gelu nodes), nothing in Llama (SiLU);
  3. training: `bitpipec train` of GPT-2 (tanh) and BERT (erf) with the fusion on and with
     BP_FUSE=0 agree per step (loss and gradient norm, relative 1e-6), and the fused run says so.

usage: test_fuse_gelu.py BITPIPEC CASES_DIR MODELS_DIR
Prints one line per check and a closing line `N passed, M failed`."""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

FUSED_RE = re.compile(r"(\d+) GELU chains fused: (\d+) tanh, (\d+) erf")


def run(cmd, fuse=True):
    env = dict(os.environ)
    if fuse:
        env.pop("BP_FUSE", None)
    else:
        env["BP_FUSE"] = "0"
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def fused_counts(bitpipec, model, fuse=True, extra=()):
    p = run([bitpipec, "inspect", model, *extra], fuse)
    m = FUSED_RE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"inspect {model}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return int(m.group(2)), int(m.group(3)), p.stdout


def close(a, b):
    """max |a - b| / (tol_abs + tol_rel |b|) <= 1: float32 1e-6 + 1e-5 |b|, float64 1e-12 + 1e-10 |b|."""
    ta, tr = (1e-6, 1e-5) if b.dtype == np.float32 else (1e-12, 1e-10)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, f"shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return False, "NaN in different places"
    a64, b64 = np.nan_to_num(a64), np.nan_to_num(b64)  # Pow(x < 0, 3.001): NaN on both sides
    err = np.abs(a64 - b64)
    worst = float(np.max(err / (ta + tr * np.abs(b64))))
    return worst <= 1, f"max abs err {float(err.max()):.3g} ({worst:.3g} of the tolerance)"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        self.passed += bool(ok)
        self.failed += not ok


def test_cases(bitpipec, cases_dir, c, tmp):
    manifest = json.load(open(os.path.join(cases_dir, "cases.json")))
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        print("note: onnxruntime not importable: compared with the committed onnxruntime outputs only")
    for name, info in sorted(manifest.items()):
        model = os.path.join(cases_dir, name + ".onnx")
        inputs = {i: os.path.join(cases_dir, f"{name}.{i}.npy") for i in info["inputs"]}
        tanh, erf, _ = fused_counts(bitpipec, model)
        c.check((tanh, erf) == (info["tanh"], info["erf"]),
                f"{name}: fused {tanh} tanh, {erf} erf (expected {info['tanh']}, {info['erf']}: {info['why']})")
        tanh0, erf0, _ = fused_counts(bitpipec, model, fuse=False)
        c.check((tanh0, erf0) == (0, 0), f"{name}: BP_FUSE=0 fuses nothing ({tanh0}, {erf0})")
        refs = {o: np.load(os.path.join(cases_dir, f"{name}.{o}.ort.npy")) for o in info["outputs"]}
        if ort is not None:
            sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            fresh = sess.run(None, {i: np.load(f) for i, f in inputs.items()})
            for o, v in zip(info["outputs"], fresh):
                ok, msg = close(v, refs[o])
                c.check(ok, f"{name}: committed output {o} = fresh onnxruntime ({msg})")
        for fuse in (True, False):
            out = os.path.join(tmp, f"{name}_{int(fuse)}")
            cmd = [bitpipec, "run", model, "--output-dir", out]
            for i, f in inputs.items():
                cmd += ["--input", f"{i}={f}"]
            p = run(cmd, fuse)
            if p.returncode != 0:
                c.check(False, f"{name}: bitpipec run (fusion {'on' if fuse else 'off'}): exit {p.returncode}\n{p.stderr}")
                continue
            for o in info["outputs"]:
                ok, msg = close(np.load(os.path.join(out, o + ".npy")), refs[o])
                c.check(ok, f"{name}: output {o} (fusion {'on' if fuse else 'off'}) = onnxruntime ({msg})")


def test_models(bitpipec, models, c):
    expect = {("gpt2", "ts"): (2, 0), ("gpt2", "train"): (2, 0), ("gpt2", "dynamo"): (2, 0),
              ("bert", "ts"): (0, 3), ("bert", "train"): (0, 3), ("bert", "dynamo"): (0, 0),
              ("llama", "ts"): (0, 0), ("llama", "train"): (0, 0), ("llama", "dynamo"): (0, 0)}
    for (fam, variant), want in expect.items():
        model = os.path.join(models, fam, variant + ".onnx")
        tanh, erf, out = fused_counts(bitpipec, model, extra=["--bind", "batch=2", "--bind", "sequence=16"])
        hist = out.split("nodes after folding")[1]
        left = [op for op in ("Tanh", "Erf") if re.search(rf"\b{op} \d", hist)]
        c.check((tanh, erf) == want and (want == (0, 0) or not left),
                f"models/{fam}/{variant}: fused {tanh} tanh, {erf} erf (expected {want}), Tanh/Erf left: {left or 'none'}")


def train(bitpipec, models, fam, fuse):
    d = os.path.join(models, fam)
    cmd = [bitpipec, "train", os.path.join(d, "train.onnx"), "--input", "input_ids=" + os.path.join(d, "input_ids.npy"),
           "--targets", os.path.join(d, "targets.npy"), "--steps", "5", "--optimizer", "adamw", "--lr", "0.01",
           "--no-dropout"]
    p = run(cmd, fuse)
    rows = [l.split() for l in p.stdout.splitlines() if l.startswith("step ")]
    return p, [(float(r[3]), float(r[5])) for r in rows]


def test_training(bitpipec, models, c):
    for fam, chains in (("gpt2", "2 GELU chains"), ("bert", "3 GELU chains")):
        p1, on = train(bitpipec, models, fam, True)
        p0, off = train(bitpipec, models, fam, False)
        if p1.returncode or p0.returncode or len(on) != 5 or len(off) != 5:
            c.check(False, f"train {fam}: exit {p1.returncode} / {p0.returncode}\n{p1.stderr}\n{p0.stderr}")
            continue
        c.check(f"fused {chains}" in p1.stderr and "GELU" not in p0.stderr,
                f"train {fam}: the note on the fusion in the fused run only")
        worst = max(max(abs(a[0] - b[0]) / abs(b[0]), abs(a[1] - b[1]) / abs(b[1])) for a, b in zip(on, off))
        c.check(worst <= 1e-6, f"train {fam}: fused vs BP_FUSE=0 max rel diff (loss, grad_norm) {worst:.3g} over 5 AdamW "
                               f"steps (tol 1e-6)")


def main():
    bitpipec, cases_dir, models = sys.argv[1:4]
    c = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        test_cases(bitpipec, cases_dir, c, tmp)
    test_models(bitpipec, models, c)
    test_training(bitpipec, models, c)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
